use super::*;

#[test]
fn account_types_parse_in_the_runbooks_spelling_and_follow_the_code_ranges() {
    for account_type in AccountType::ALL {
        assert_eq!(
            AccountType::parse(account_type.as_str()),
            Some(account_type)
        );
    }
    for bad in ["expense", "Expense", "", "EXPENSES", " EXPENSE"] {
        assert_eq!(AccountType::parse(bad), None, "{bad}");
    }
    let cases = [
        (0, None),
        (999, None),
        (1000, Some(AccountType::Asset)),
        (1999, Some(AccountType::Asset)),
        (2000, Some(AccountType::Liability)),
        (2300, Some(AccountType::Liability)),
        (3900, Some(AccountType::Equity)),
        (4900, Some(AccountType::Revenue)),
        (5000, Some(AccountType::Expense)),
        (6200, Some(AccountType::Expense)),
        (9999, Some(AccountType::Expense)),
        (10000, None),
        (u16::MAX, None),
    ];
    for (code, want) in cases {
        assert_eq!(AccountType::of_code(code), want, "{code}");
        if let Some(account_type) = want {
            let (low, high) = account_type.code_range();
            assert!((low..=high).contains(&code), "{code}");
        }
    }
}

#[test]
fn the_runbook_chart_holds_its_booking_accounts_each_of_its_ranges_type() {
    let chart = Chart::runbook();
    assert_eq!(chart.account(6200).unwrap().name, "Lost Revenue Expense");
    for account in &chart.accounts {
        assert_eq!(
            AccountType::of_code(account.code),
            Some(account.account_type)
        );
        assert!(!account.closed);
    }
    for (role, code, account_type) in chart.booking.roles() {
        let account = chart.account(code).unwrap_or_else(|| panic!("{role}"));
        assert_eq!(account.account_type, account_type, "{role}");
    }
    let codes: Vec<u16> = chart.accounts.iter().map(|a| a.code).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(codes, sorted);
}

/// Validates `entry` changed by `change` against the runbook chart with 1999 closed.
fn check(change: impl FnOnce(&mut JournalEntry), want: Result<(), LedgerError>) {
    let mut chart = Chart::runbook();
    chart.accounts.insert(
        0,
        Account {
            code: 1999,
            name: "Old Clearing".to_owned(),
            account_type: AccountType::Asset,
            closed: true,
        },
    );
    let mut proposed = entry("inc-42-est-1", 1234);
    change(&mut proposed);
    assert_eq!(validate_revenue_transaction(&chart, &proposed), want);
}

#[test]
fn a_balanced_entry_on_open_accounts_passes() {
    check(|_| {}, Ok(()));
    check(
        |e| {
            e.lines[0].account_type = Some(AccountType::Expense);
            e.lines[1].account_type = Some(AccountType::Liability);
            e.lines[1].memo = Some("accrued".to_owned());
            e.link = EntryLink::default();
        },
        Ok(()),
    );
    // Three lines, split credits.
    check(
        |e| {
            e.lines[1].amount_minor = 1000;
            e.lines.push(line(3900, Side::Credit, 234));
        },
        Ok(()),
    );
    check(|e| e.id = "a.B_c-9:x".to_owned(), Ok(()));
    check(|e| e.effective_at = Timestamp::from_millis(0), Ok(()));
    check(|e| e.effective_at = EFFECTIVE_AT_MAX, Ok(()));
}

#[test]
fn every_rejection_is_its_enumerated_error() {
    use LedgerError::*;
    check(|e| e.lines.truncate(1), Err(TooFewLines));
    check(|e| e.lines.clear(), Err(TooFewLines));
    check(
        |e| {
            let extra = e.lines[0].clone();
            e.lines = vec![extra; ENTRY_LINES_MAX + 1];
        },
        Err(TooManyLines(ENTRY_LINES_MAX + 1)),
    );
    check(
        |e| e.lines[1].amount_minor = 1000,
        Err(Unbalanced {
            debits: 1234,
            credits: 1000,
        }),
    );
    check(
        |e| e.lines[1].side = Side::Debit,
        Err(Unbalanced {
            debits: 2468,
            credits: 0,
        }),
    );
    check(
        |e| e.lines[1].currency = eur(),
        Err(MixedCurrencies {
            first: usd(),
            other: eur(),
        }),
    );
    check(|e| e.lines[1].account = 2301, Err(UnknownAccount(2301)));
    check(|e| e.lines[1].account = 42, Err(UnknownAccount(42)));
    check(|e| e.lines[1].account = 1999, Err(ClosedAccount(1999)));
    // A reversal takes back what a closed account holds.
    check(
        |e| {
            e.lines[1].account = 1999;
            e.reverses = Some("inc-42-est-0".to_owned());
        },
        Ok(()),
    );
    check(
        |e| e.lines[0].amount_minor = 0,
        Err(NonPositiveAmount { line: 0 }),
    );
    check(
        |e| e.lines[1].amount_minor = -1234,
        Err(NonPositiveAmount { line: 1 }),
    );
    check(
        |e| e.lines[0].account_type = Some(AccountType::Revenue),
        Err(TypeMismatch {
            code: 6200,
            stated: AccountType::Revenue,
            actual: AccountType::Expense,
        }),
    );
    check(
        |e| {
            e.lines[0].amount_minor = i64::MAX;
            e.lines.push(line(6200, Side::Debit, 1));
            e.lines[1].amount_minor = i64::MAX;
        },
        Err(Overflow),
    );
    check(|e| e.description = " \n".to_owned(), Err(EmptyDescription));
    check(
        |e| e.description = "é".repeat(DESCRIPTION_BYTES_MAX / 2 + 1),
        Err(DescriptionTooLong(DESCRIPTION_BYTES_MAX + 2)),
    );
    check(
        |e| e.lines[1].memo = Some("m".repeat(MEMO_BYTES_MAX + 1)),
        Err(MemoTooLong { line: 1 }),
    );
    check(
        |e| e.link.inputs_json = Some("x".repeat(INPUTS_BYTES_MAX + 1)),
        Err(InputsTooLong(INPUTS_BYTES_MAX + 1)),
    );
    check(|e| e.id = String::new(), Err(InvalidId(String::new())));
    check(
        |e| e.id = "a b".to_owned(),
        Err(InvalidId("a b".to_owned())),
    );
    check(
        |e| e.id = "a/b".to_owned(),
        Err(InvalidId("a/b".to_owned())),
    );
    check(
        |e| e.id = "x".repeat(ENTRY_ID_BYTES_MAX + 1),
        Err(InvalidId("x".repeat(ENTRY_ID_BYTES_MAX))),
    );
    check(
        |e| e.reverses = Some("\"".to_owned()),
        Err(InvalidId("\"".to_owned())),
    );
    check(
        |e| e.reverses = Some(e.id.clone()),
        Err(ReversesItself("inc-42-est-1".to_owned())),
    );
    check(
        |e| e.effective_at = Timestamp::from_millis(-1),
        Err(EffectiveTimeOutOfRange),
    );
    check(
        |e| e.effective_at = Timestamp::MAX,
        Err(EffectiveTimeOutOfRange),
    );
}

#[test]
fn error_codes_are_stable_and_distinct() {
    use LedgerError::*;
    let errors = [
        (TooFewLines, "too_few_lines"),
        (TooManyLines(65), "too_many_lines"),
        (
            Unbalanced {
                debits: 1,
                credits: 2,
            },
            "unbalanced",
        ),
        (
            MixedCurrencies {
                first: usd(),
                other: eur(),
            },
            "mixed_currencies",
        ),
        (UnknownAccount(1), "unknown_account"),
        (ClosedAccount(1), "closed_account"),
        (NonPositiveAmount { line: 0 }, "non_positive_amount"),
        (
            TypeMismatch {
                code: 6200,
                stated: AccountType::Asset,
                actual: AccountType::Expense,
            },
            "type_mismatch",
        ),
        (Overflow, "overflow"),
        (EmptyDescription, "empty_description"),
        (DescriptionTooLong(513), "description_too_long"),
        (MemoTooLong { line: 0 }, "memo_too_long"),
        (InputsTooLong(1), "inputs_too_long"),
        (InvalidId(String::new()), "invalid_id"),
        (EffectiveTimeOutOfRange, "effective_time_out_of_range"),
        (ReversesItself("a".into()), "reverses_itself"),
        (ReversalMismatch("a".into()), "reversal_mismatch"),
        (IdConflict("a".into()), "id_conflict"),
        (AlreadyReversed("a".into()), "already_reversed"),
        (UnknownEntry("a".into()), "unknown_entry"),
    ];
    let mut codes: Vec<&str> = Vec::new();
    for (error, code) in &errors {
        assert_eq!(error.code(), *code, "{error}");
        assert!(!codes.contains(code), "{code} twice");
        codes.push(code);
    }
    assert_eq!(
        NonPositiveAmount { line: 2 }.field().as_deref(),
        Some("lines[2].amount_minor")
    );
    assert_eq!(UnknownAccount(1).field(), None);
}

#[test]
fn a_reversal_mirrors_its_entry_and_names_it() {
    let original = entry("inc-42-est-1", 1234);
    let later = Timestamp::from_millis(T0.millis() + 60_000);
    let reversal = reversal_of(&original, "inc-42-rev-1".to_owned(), later);
    assert_eq!(reversal.reverses.as_deref(), Some("inc-42-est-1"));
    assert_eq!(reversal.effective_at, later);
    assert_eq!(reversal.link, original.link);
    assert_eq!(reversal.lines[0].side, Side::Credit);
    assert_eq!(reversal.lines[1].side, Side::Debit);
    assert_eq!(
        reversal.description,
        "Reversal of inc-42-est-1: Revenue loss - checkout anomaly"
    );
    assert_eq!(
        validate_revenue_transaction(&Chart::runbook(), &reversal),
        Ok(())
    );
    let long = JournalEntry {
        description: "é".repeat(DESCRIPTION_BYTES_MAX / 2),
        ..original.clone()
    };
    let cut = reversal_of(&long, "r".to_owned(), T0).description;
    assert!(
        cut.len() <= DESCRIPTION_BYTES_MAX && cut.ends_with('é'),
        "{cut}"
    );
}

#[test]
fn retries_and_reversals_are_checked_against_what_is_recorded() {
    use LedgerError::*;
    let original = entry("inc-42-est-1", 1234);
    let held = recorded(original.clone());
    assert_eq!(check_retry(None, &original), Ok(Retry::New));
    assert_eq!(
        check_retry(Some(&held), &original),
        Ok(Retry::Existing(&held))
    );
    let other = entry("inc-42-est-1", 1235);
    assert_eq!(
        check_retry(Some(&held), &other),
        Err(IdConflict("inc-42-est-1".to_owned()))
    );

    let reversal = reversal_of(&original, "inc-42-rev-1".to_owned(), T0);
    assert_eq!(check_reversal(None, &original), Ok(()), "not a reversal");
    assert_eq!(
        check_reversal(None, &reversal),
        Err(UnknownEntry("inc-42-est-1".to_owned()))
    );
    assert_eq!(check_reversal(Some(&held), &reversal), Ok(()));
    let reversed = RecordedEntry {
        reversed_by: Some("inc-42-rev-1".to_owned()),
        ..held.clone()
    };
    assert_eq!(
        check_reversal(Some(&reversed), &reversal),
        Ok(()),
        "a retry"
    );
    let second = reversal_of(&original, "again".to_owned(), T0);
    assert_eq!(
        check_reversal(Some(&reversed), &second),
        Err(AlreadyReversed("inc-42-est-1".to_owned()))
    );
    let mut lopsided = reversal.clone();
    lopsided.lines[0].amount_minor = 1;
    lopsided.lines[1].amount_minor = 1;
    assert_eq!(
        check_reversal(Some(&held), &lopsided),
        Err(ReversalMismatch("inc-42-rev-1".to_owned()))
    );
}
