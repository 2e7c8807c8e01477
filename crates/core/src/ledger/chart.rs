//! The chart of accounts: the five account types, the code ranges that say a code's type, the
//! runbook's seed and the accounts the incident lifecycle books to.
//!
//! A chart is plain data; the configuration (`config::ledger`) builds one from the seed and
//! checks that every code's range matches its type and that the booking accounts exist.

/// Lowest account code: codes are four digits.
pub const ACCOUNT_CODE_MIN: u16 = 1000;
/// Highest account code.
pub const ACCOUNT_CODE_MAX: u16 = 9999;
/// Most accounts a chart may hold (the seed plus the configured ones).
pub const ACCOUNTS_MAX: usize = 256;
/// Longest account name, in bytes.
pub const ACCOUNT_NAME_BYTES_MAX: usize = 64;

/// The five account types. Codes are four digits whose first digit says the type:
/// 1 asset, 2 liability, 3 equity, 4 revenue, 5–9 expense (6200 is the runbook's Lost Revenue
/// Expense).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountType {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

impl AccountType {
    /// Every type, in the order of their code ranges.
    pub const ALL: [AccountType; 5] = [
        AccountType::Asset,
        AccountType::Liability,
        AccountType::Equity,
        AccountType::Revenue,
        AccountType::Expense,
    ];

    /// `ASSET`, `LIABILITY`, `EQUITY`, `REVENUE`, `EXPENSE`: the runbook's spelling, used on the
    /// wire, in the store and in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Asset => "ASSET",
            AccountType::Liability => "LIABILITY",
            AccountType::Equity => "EQUITY",
            AccountType::Revenue => "REVENUE",
            AccountType::Expense => "EXPENSE",
        }
    }

    /// The runbook's spelling ([`AccountType::as_str`]), exactly: the wire and the store use
    /// one spelling, so `expense` is not a type (an error that names the valid ones is clearer
    /// than two spellings of one value).
    pub fn parse(text: &str) -> Option<AccountType> {
        AccountType::ALL
            .into_iter()
            .find(|account_type| account_type.as_str() == text)
    }

    /// The type a four-digit code's range belongs to; `None` for a code outside 1000..=9999.
    pub fn of_code(code: u16) -> Option<AccountType> {
        match code {
            1000..=1999 => Some(AccountType::Asset),
            2000..=2999 => Some(AccountType::Liability),
            3000..=3999 => Some(AccountType::Equity),
            4000..=4999 => Some(AccountType::Revenue),
            5000..=9999 => Some(AccountType::Expense),
            _ => None,
        }
    }

    /// The types' names, comma-separated, for an error that names the valid ones.
    pub fn list() -> String {
        let names: Vec<&str> = AccountType::ALL.iter().map(|t| t.as_str()).collect();
        names.join(", ")
    }

    /// The code range of this type, for error messages (`5000–9999`).
    pub fn code_range(self) -> (u16, u16) {
        match self {
            AccountType::Asset => (1000, 1999),
            AccountType::Liability => (2000, 2999),
            AccountType::Equity => (3000, 3999),
            AccountType::Revenue => (4000, 4999),
            AccountType::Expense => (5000, 9999),
        }
    }

    /// The root account of this type in a Beancount ledger (`Expenses`).
    pub fn beancount_root(self) -> &'static str {
        match self {
            AccountType::Asset => "Assets",
            AccountType::Liability => "Liabilities",
            AccountType::Equity => "Equity",
            AccountType::Revenue => "Income",
            AccountType::Expense => "Expenses",
        }
    }
}

impl std::fmt::Display for AccountType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub code: u16,
    pub name: String,
    pub account_type: AccountType,
    /// A closed account takes no new postings; its history stays.
    pub closed: bool,
}

/// The accounts the incident lifecycle ([`crate::ledger::plan_booking`]) books to.
/// docs/ledger.md shows the double entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingAccounts {
    /// EXPENSE: the loss (the runbook's 6200 Lost Revenue Expense), debited by every estimate
    /// and final figure.
    pub loss_expense: u16,
    /// LIABILITY: where an estimate's credit waits while the incident is open. Its balance is
    /// the sum of the open incidents' current estimates.
    pub accrued_estimates: u16,
    /// EQUITY: where a final figure's credit goes. Lost revenue is an opportunity cost (no
    /// cash ever arrived, none leaves), so the offset keeps equity whole while the expense
    /// shows the loss.
    pub finalised_offset: u16,
    /// REVENUE: revenue later won back (orders completed after a fix, a retry campaign),
    /// posted by hand against the offset; the lifecycle never books it by itself.
    pub recovered_revenue: u16,
}

impl BookingAccounts {
    /// The runbook chart's booking accounts.
    pub const RUNBOOK: BookingAccounts = BookingAccounts {
        loss_expense: 6200,
        accrued_estimates: 2300,
        finalised_offset: 3900,
        recovered_revenue: 4900,
    };

    /// Each role with its code and the type its account must have, for checking a chart.
    pub fn roles(&self) -> [(&'static str, u16, AccountType); 4] {
        [
            ("loss_expense", self.loss_expense, AccountType::Expense),
            (
                "accrued_estimates",
                self.accrued_estimates,
                AccountType::Liability,
            ),
            (
                "finalised_offset",
                self.finalised_offset,
                AccountType::Equity,
            ),
            (
                "recovered_revenue",
                self.recovered_revenue,
                AccountType::Revenue,
            ),
        ]
    }
}

impl Default for BookingAccounts {
    fn default() -> BookingAccounts {
        BookingAccounts::RUNBOOK
    }
}

/// The chart of accounts: the runbook's seed ([`Chart::runbook`]) or the config's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// In code order, each code once.
    pub accounts: Vec<Account>,
    /// The accounts the lifecycle books to; each is in `accounts`, open and of its role's
    /// type (the configuration checks it).
    pub booking: BookingAccounts,
}

impl Chart {
    /// The seed the runbook implies: 6200 Lost Revenue Expense, an accrued-estimate liability
    /// (2300), a recovered-revenue account (4900) and an offset for finalised estimates (3900,
    /// equity: docs/ledger.md explains the choice).
    pub fn runbook() -> Chart {
        let account = |code: u16, name: &str| Account {
            code,
            name: name.to_owned(),
            account_type: AccountType::of_code(code).expect("seed codes are in range"),
            closed: false,
        };
        Chart {
            accounts: vec![
                account(2300, "Accrued Revenue-Loss Estimates"),
                account(3900, "Finalised Revenue-Loss Offset"),
                account(4900, "Recovered Revenue"),
                account(6200, "Lost Revenue Expense"),
            ],
            booking: BookingAccounts::RUNBOOK,
        }
    }

    pub fn account(&self, code: u16) -> Option<&Account> {
        self.accounts.iter().find(|account| account.code == code)
    }
}

impl Default for Chart {
    fn default() -> Chart {
        Chart::runbook()
    }
}
