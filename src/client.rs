//! A small blocking HTTP client over ureq for `demo`, `bench` and the typed requests of
//! `remote`: status and body, never an error for a 4xx or 5xx (those are answers, not
//! failures).

use std::time::Duration;

pub struct Client {
    agent: ureq::Agent,
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Client {
    pub fn new() -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Client { agent }
    }

    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, ureq::Error> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send(body)?)
    }

    pub fn delete(&self, url: &str, headers: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
        let mut request = self.agent.delete(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.call()?)
    }

    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Reply, ureq::Error> {
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.call()?)
    }
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Ok(Reply { status, body })
}
