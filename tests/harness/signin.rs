//! An HTTP-only "browser" for sign-in flows that do not need Chromium: a
//! cookie jar, redirects followed by hand, and the test IdP's development
//! sign-in page filled in by parsing its form.
//!
//! Simplifications against a real browser, all harmless on loopback:
//! cookies are kept per `host:port` (a browser shares them across ports of
//! one host), `Path`, `Domain`, `Secure`, `SameSite` and the `__Host-`
//! rules are not applied, and no `Sec-Fetch-Site` is sent. Pages that
//! submit a form from script as soon as they load (the IdP's logout
//! confirmation, `response_mode=form_post`) are submitted as a browser
//! would.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use crate::client::{send_raw, Response};

/// Requests a navigation makes (redirects and form posts included) before
/// [`Agent::navigate`] gives up.
pub const MAX_HOPS: usize = 20;

/// What a browser sends on a top-level navigation; a proxy tells a browser
/// from an API client by these.
pub const NAVIGATION_HEADERS: &[(&str, &str)] = &[
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Dest", "document"),
    ("User-Agent", "portcullis-e2e-agent"),
];

/// An `http://` URL, split for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, as sent in the request line (no fragment).
    pub target: String,
}

impl Url {
    /// Parse an absolute `http://` URL; panics on anything else (an
    /// `https://` redirect on loopback is a configuration mistake).
    pub fn parse(url: &str) -> Url {
        let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not an http:// URL: {url:?}"));
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) => (&rest[..at], rest[at..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        let target = if target.starts_with('?') { format!("/{target}") } else { target };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                (host, port.parse().unwrap_or_else(|_| panic!("bad port in {url:?}")))
            }
            _ => (authority, 80),
        };
        assert!(!host.is_empty(), "no host in {url:?}");
        Url { host: host.to_owned(), port, target }
    }

    /// The cookie jar's key and the `Host` header: `host:port`.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Where to connect: `localhost` is 127.0.0.1 (the test servers listen
    /// on IPv4 loopback only).
    pub fn addr(&self) -> SocketAddr {
        if self.host == "localhost" {
            return SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
        }
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return SocketAddr::new(ip, self.port);
        }
        let addrs: Vec<SocketAddr> =
            (host, self.port).to_socket_addrs().unwrap_or_else(|e| panic!("resolving {}: {e}", self.host)).collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .unwrap_or_else(|| panic!("{} has no address", self.host))
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// The origin, for `Origin` headers: `http://host:port`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host_port())
    }

    /// Resolve `reference` (a `Location`, a form `action`) against this URL.
    pub fn join(&self, reference: &str) -> String {
        let reference = reference.trim();
        if reference.starts_with("http://") || reference.starts_with("https://") {
            reference.to_owned()
        } else if let Some(rest) = reference.strip_prefix("//") {
            format!("http://{rest}")
        } else if reference.starts_with('/') {
            format!("{}{reference}", self.origin())
        } else if reference.starts_with('?') {
            format!("{}{}{reference}", self.origin(), self.path())
        } else if reference.is_empty() || reference.starts_with('#') {
            self.to_string()
        } else {
            let directory = &self.path()[..self.path().rfind('/').map_or(0, |i| i + 1)];
            format!("{}{directory}{reference}", self.origin())
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_port(), self.target)
    }
}

/// Decode `%XX` escapes and `+` (form encoding) in a query value.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `name=value` pairs of a query string (or form body).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// The first value of `name` in `url`'s query (a full URL or a request
/// target).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    query_pairs(query).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// An HTML form: where it goes and the fields it would submit as it stands
/// (inputs with a name, their `value` or empty; no buttons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub action: String,
    /// `GET` or `POST`.
    pub method: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Set `name` (replacing its value, or adding it).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
    }
}

/// The first `<form>` of `html`, if any. Enough HTML for the pages the test
/// IdP and the proxy render, not a general parser.
pub fn parse_form(html: &str) -> Option<Form> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<form")?;
    let tag_end = start + lower[start..].find('>')?;
    let attributes = parse_attributes(&html[start + 5..tag_end]);
    let end = lower[tag_end..].find("</form").map_or(html.len(), |i| tag_end + i);
    let mut fields = Vec::new();
    let mut at = tag_end;
    while let Some(offset) = lower[at..end].find("<input") {
        let input_start = at + offset;
        let input_end = input_start + lower[input_start..].find('>').unwrap_or(end - input_start);
        let input = parse_attributes(&html[input_start + 6..input_end]);
        let kind = attribute(&input, "type").unwrap_or("text").to_ascii_lowercase();
        if let Some(name) = attribute(&input, "name") {
            if !matches!(kind.as_str(), "submit" | "button" | "image" | "reset" | "file") {
                fields.push((name.to_owned(), attribute(&input, "value").unwrap_or_default().to_owned()));
            }
        }
        at = input_end;
    }
    Some(Form {
        action: attribute(&attributes, "action").unwrap_or_default().to_owned(),
        method: attribute(&attributes, "method").unwrap_or("get").to_ascii_uppercase(),
        fields,
    })
}

fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `name="value" name='value' name=value name` inside a tag.
fn parse_attributes(text: &str) -> Vec<(String, String)> {
    let mut attributes = Vec::new();
    let mut rest = text.trim_start_matches('/');
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if rest.is_empty() {
            return attributes;
        }
        let name_end = rest.find(|c: char| c.is_whitespace() || c == '=' || c == '/').unwrap_or(rest.len());
        let name = rest[..name_end].to_owned();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let close = after[1..].find(quote).map_or(after.len(), |i| i + 1);
                    (&after[1..close], after.get(close + 1..).unwrap_or_default())
                }
                _ => {
                    let stop = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..stop], &after[stop..])
                }
            };
            rest = remaining;
            decode_entities(value)
        } else {
            String::new()
        };
        if name.is_empty() {
            // A stray character; skip it rather than loop on it.
            rest = rest.get(1..).unwrap_or_default();
            continue;
        }
        attributes.push((name, value));
    }
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The test IdP's development sign-in page (`oidc-provider`'s
/// devInteractions login form).
pub fn is_sign_in_page(response: &Response) -> bool {
    response.status == 200 && {
        let body = response.text();
        body.contains(r#"name="prompt" value="login""#) && body.contains(r#"name="login""#)
    }
}

/// A page that submits its first form from script as soon as it loads.
fn is_auto_submit_page(response: &Response) -> bool {
    response.status == 200 && response.text().contains("document.forms[0].submit()")
}

fn is_redirect(response: &Response) -> bool {
    matches!(response.status, 301 | 302 | 303 | 307 | 308) && response.header("location").is_some()
}

/// A cookie jar and the requests of one browser profile.
#[derive(Debug, Clone, Default)]
pub struct Agent {
    /// `host:port` → cookie name → value.
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

impl Agent {
    pub fn new() -> Agent {
        Agent::default()
    }

    /// The cookie `name` kept for `host_port` (`127.0.0.1:8080`).
    pub fn cookie(&self, host_port: &str, name: &str) -> Option<String> {
        self.jar.get(host_port)?.get(name).cloned()
    }

    /// Every cookie kept for `host_port`, by name.
    pub fn cookies(&self, host_port: &str) -> Vec<(String, String)> {
        self.jar.get(host_port).map(|c| c.iter().map(|(n, v)| (n.clone(), v.clone())).collect()).unwrap_or_default()
    }

    pub fn set_cookie(&mut self, host_port: &str, name: &str, value: &str) {
        self.jar.entry(host_port.to_owned()).or_default().insert(name.to_owned(), value.to_owned());
    }

    pub fn remove_cookie(&mut self, host_port: &str, name: &str) {
        if let Some(cookies) = self.jar.get_mut(host_port) {
            cookies.remove(name);
        }
    }

    /// Forget every cookie of `host_port`.
    pub fn clear_cookies(&mut self, host_port: &str) {
        self.jar.remove(host_port);
    }

    /// The `Cookie` header value for `host_port` (empty when none).
    pub fn cookie_header(&self, host_port: &str) -> String {
        self.cookies(host_port).iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// One request to `url` with `headers`, plus the jar's `Cookie` header
    /// unless `headers` has one; records the answer's `Set-Cookie`s. No
    /// redirect is followed.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let parsed = Url::parse(url);
        let host_port = parsed.host_port();
        let host = if parsed.port == 80 { parsed.host.clone() } else { host_port.clone() };
        let mut raw = format!("{method} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n", parsed.target);
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        let cookies = self.cookie_header(&host_port);
        if !cookies.is_empty() && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("cookie")) {
            raw.push_str(&format!("Cookie: {cookies}\r\n"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        let response = send_raw(parsed.addr(), &bytes).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        self.store_cookies(&host_port, &response);
        response
    }

    pub fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", url, headers, b"")
    }

    /// POST `fields` form-encoded.
    pub fn post_form(&mut self, url: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.request("POST", url, &all, crate::oidc::form_urlencoded(fields).as_bytes())
    }

    /// GET `url` and follow `Location`s (absolute or relative, any host),
    /// at most `max_hops` of them, sending `headers` on every request.
    /// Returns the last answer (a redirect still, if the hops ran out) and
    /// every URL requested, `url` first.
    pub fn follow(&mut self, url: &str, headers: &[(&str, &str)], max_hops: usize) -> (Response, Vec<String>) {
        let mut visited = vec![url.to_owned()];
        let mut response = self.get(url, headers);
        while is_redirect(&response) && visited.len() <= max_hops {
            let next = self.redirect_target(visited.last().expect("a visited URL"), &response);
            response = self.get(&next, headers);
            visited.push(next);
        }
        (response, visited)
    }

    fn redirect_target(&self, from: &str, response: &Response) -> String {
        let location = response.header("location").expect("a redirect has a Location");
        Url::parse(from).join(location)
    }

    /// Submit `form`, found on the page at `page_url`, as a browser would
    /// (navigation headers, `Origin` on a POST). One request.
    pub fn submit(&mut self, page_url: &str, form: &Form) -> (String, Response) {
        let page = Url::parse(page_url);
        let action = page.join(&form.action);
        let fields: Vec<(&str, &str)> = form.fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        if form.method == "POST" {
            let origin = page.origin();
            let mut headers = NAVIGATION_HEADERS.to_vec();
            headers.push(("Origin", &origin));
            let response = self.post_form(&action, &headers, &fields);
            (action, response)
        } else {
            let separator = if action.contains('?') { '&' } else { '?' };
            let url = format!(
                "{}{separator}{}",
                action.split('#').next().unwrap_or_default(),
                crate::oidc::form_urlencoded(&fields)
            );
            let response = self.get(&url, NAVIGATION_HEADERS);
            (url, response)
        }
    }

    /// On the IdP's sign-in page (`page`, at `page_url`), sign in as
    /// `login` (any password). Returns where the form went and the answer
    /// (a redirect back into the authorization flow).
    pub fn sign_in_at_idp(&mut self, page_url: &str, page: &Response, login: &str) -> (String, Response) {
        assert!(is_sign_in_page(page), "not the IdP's sign-in page ({page_url}): {} {}", page.status, page.text());
        let mut form = parse_form(&page.text()).expect("the sign-in page has a form");
        form.set("login", login);
        form.set("password", "any-password");
        self.submit(page_url, &form)
    }

    /// Navigate to `start_url` as a browser would: follow redirects and
    /// pages that submit themselves (the IdP's logout confirmation), until
    /// any other answer, which is returned with every URL requested. The
    /// IdP's sign-in page is such an answer (see
    /// [`Agent::navigate_and_sign_in`]).
    pub fn navigate(&mut self, start_url: &str) -> (Response, Vec<String>) {
        self.navigate_as(start_url, None)
    }

    /// [`Agent::navigate`], signing in as `login` when the IdP's sign-in
    /// page comes up (it does not when this agent's IdP session is still
    /// signed in: the IdP then redirects straight back).
    pub fn navigate_and_sign_in(&mut self, start_url: &str, login: &str) -> (Response, Vec<String>) {
        self.navigate_as(start_url, Some(login))
    }

    fn navigate_as(&mut self, start_url: &str, mut login: Option<&str>) -> (Response, Vec<String>) {
        let mut visited = vec![start_url.to_owned()];
        let mut response = self.get(start_url, NAVIGATION_HEADERS);
        while visited.len() <= MAX_HOPS {
            let here = visited.last().expect("a visited URL").clone();
            let (next, answer) = if is_redirect(&response) {
                let next = self.redirect_target(&here, &response);
                let answer = self.get(&next, NAVIGATION_HEADERS);
                (next, answer)
            } else if is_sign_in_page(&response) {
                // Sign in once: a second sign-in page means the first failed.
                let Some(name) = login.take() else { break };
                self.sign_in_at_idp(&here, &response, name)
            } else if is_auto_submit_page(&response) {
                let form = parse_form(&response.text())
                    .unwrap_or_else(|| panic!("{here} submits a form it does not have: {}", response.text()));
                self.submit(&here, &form)
            } else {
                let body = response.text();
                assert!(
                    !(response.status == 200 && body.contains(r#"name="prompt" value="consent""#)),
                    "the IdP asked for consent at {here}; tests/idp/server.mjs should grant without asking"
                );
                break;
            };
            visited.push(next);
            response = answer;
        }
        (response, visited)
    }

    fn store_cookies(&mut self, host_port: &str, response: &Response) {
        for (name, value) in &response.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            match parse_set_cookie(value, crate::now()) {
                Some((name, Some(value))) => self.set_cookie(host_port, &name, &value),
                Some((name, None)) => self.remove_cookie(host_port, &name),
                None => {}
            }
        }
    }
}

/// A `Set-Cookie` value as `(name, Some(value))` to keep, `(name, None)` to
/// delete (`Max-Age` ≤ 0, or `Expires` not after `now`); `None` when it has
/// no name.
pub fn parse_set_cookie(header: &str, now: u64) -> Option<(String, Option<String>)> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let (name, value) = (name.trim(), value.trim().trim_matches('"'));
    if name.is_empty() {
        return None;
    }
    let (mut max_age, mut expires) = (None, None);
    for attribute in parts {
        let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
        match key.trim().to_ascii_lowercase().as_str() {
            "max-age" => max_age = val.trim().parse::<i64>().ok(),
            "expires" => expires = http_date(val.trim()),
            _ => {}
        }
    }
    // Max-Age wins over Expires (RFC 6265 section 5.3).
    let expired = match (max_age, expires) {
        (Some(age), _) => age <= 0,
        (None, Some(at)) => at <= now,
        (None, None) => false,
    };
    Some((name.to_owned(), (!expired).then(|| value.to_owned())))
}

/// Seconds since the epoch of an HTTP date (`Wed, 16 Dec 2026 14:15:43 GMT`,
/// or the old `Wed, 16-Dec-2026 ...` form); before 1970 is 0.
pub fn http_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let (mut day, mut month, mut year, mut time) = (None, None, None, None);
    for token in text.split([' ', ',', '-']).filter(|t| !t.is_empty()) {
        let lower = token.to_ascii_lowercase();
        if token.contains(':') {
            let fields: Vec<u64> = token.split(':').filter_map(|f| f.parse().ok()).collect();
            if let [h, m, s] = fields[..] {
                time = Some(h * 3600 + m * 60 + s);
            }
        } else if let Some(index) = MONTHS.iter().position(|m| lower.starts_with(m)) {
            month = Some(index as i64 + 1);
        } else if let Ok(number) = token.parse::<i64>() {
            if token.len() >= 4 || day.is_some() {
                year = Some(if number < 70 {
                    number + 2000
                } else if number < 100 {
                    number + 1900
                } else {
                    number
                });
            } else {
                day = Some(number);
            }
        }
    }
    let (day, month, year, time) = (day?, month?, year?, time?);
    // Days from 1970-01-01 to year-month-day (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(u64::try_from(days * 86_400).unwrap_or(0) + if days < 0 { 0 } else { time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_join() {
        let url = Url::parse("http://localhost:8080/a/b?x=1#frag");
        assert_eq!((url.host.as_str(), url.port, url.target.as_str()), ("localhost", 8080, "/a/b?x=1"));
        assert_eq!(url.addr(), "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(url.join("/c?d"), "http://localhost:8080/c?d");
        assert_eq!(url.join("c"), "http://localhost:8080/a/c");
        assert_eq!(url.join("?y=2"), "http://localhost:8080/a/b?y=2");
        assert_eq!(url.join("http://127.0.0.1:1/z"), "http://127.0.0.1:1/z");
        assert_eq!(url.join("//127.0.0.1:2/z"), "http://127.0.0.1:2/z");
        assert_eq!(Url::parse("http://127.0.0.1:9?q").target, "/?q");
        assert_eq!(Url::parse("http://example.test").port, 80);
    }

    #[test]
    fn query_values_are_decoded() {
        let url = "http://h:1/cb?code=a%2Bb&state=x+y&iss=http%3A%2F%2F127.0.0.1%3A5";
        assert_eq!(query_param(url, "code").as_deref(), Some("a+b"));
        assert_eq!(query_param(url, "state").as_deref(), Some("x y"));
        assert_eq!(query_param(url, "iss").as_deref(), Some("http://127.0.0.1:5"));
        assert_eq!(query_param(url, "missing"), None);
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn set_cookie_keeps_and_deletes() {
        let now = http_date("Wed, 02 Dec 2026 14:15:43 GMT").expect("date");
        assert_eq!(now, 1_796_220_943);
        assert_eq!(
            parse_set_cookie("_session=abc; path=/; expires=Wed, 16 Dec 2026 14:15:43 GMT; httponly", now),
            Some(("_session".to_owned(), Some("abc".to_owned())))
        );
        assert_eq!(
            parse_set_cookie("_session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(("_session".to_owned(), None))
        );
        assert_eq!(parse_set_cookie("__Host-s=v; Max-Age=0; Secure", now), Some(("__Host-s".to_owned(), None)));
        assert_eq!(
            parse_set_cookie("a=b; Max-Age=60; Expires=Thu, 01-Jan-1970 00:00:00 GMT", now),
            Some(("a".to_owned(), Some("b".to_owned())))
        );
        assert_eq!(parse_set_cookie("novalue", now), None);
    }

    #[test]
    fn forms_are_read_with_their_hidden_fields() {
        let html = r#"<p><FORM autocomplete="off" action="http://127.0.0.1:5/interaction/x?a=1&amp;b=2" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input required type=password name=password>
  <button type="submit">Sign-in</button></form>
  <form><input name="other" value="no"></form>"#;
        let form = parse_form(html).expect("a form");
        assert_eq!(form.action, "http://127.0.0.1:5/interaction/x?a=1&b=2");
        assert_eq!(form.method, "POST");
        assert_eq!(
            form.fields,
            vec![
                ("prompt".to_owned(), "login".to_owned()),
                ("login".to_owned(), String::new()),
                ("password".to_owned(), String::new())
            ]
        );
    }
}
