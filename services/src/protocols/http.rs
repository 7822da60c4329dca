//! http and https: a web server persona (Apache, nginx or IIS by its `Server` header) that
//! serves the product's stock pages and error pages, optionally pretends to host WordPress,
//! phpMyAdmin or a login form, and records every request and every submitted credential.

mod pages;
mod parse;

#[cfg(feature = "tls")]
use std::sync::Arc;
use std::{collections::BTreeMap, path::Path};

use decnet_store::{Severity, rfc5424::civil_from_days};

use crate::{
    persona::{Persona, Stock},
    runtime::{Protocol, now_ns},
    session::{ConnInfo, Session, Step},
};
use pages::{App, Product};
use parse::{Parsed, Request};

/// Requests served on one connection before it is closed (Apache `MaxKeepAliveRequests`).
const MAX_REQUESTS: u32 = 100;
/// Bytes of a request body kept in its event.
const LOGGED_BODY: usize = 2048;
/// Total bytes of static files loaded from `FILES_DIR`.
const MAX_FILES_BYTES: u64 = 16 * 1024 * 1024;

/// The site as configured for one host.
#[derive(Debug, Clone)]
pub struct Http {
    server: String,
    product: Product,
    status: u16,
    app: Option<App>,
    /// Which stock front page `/` shows when no app or custom body is set.
    front: Product,
    custom_body: Option<String>,
    extra_headers: Vec<(String, String)>,
    files: BTreeMap<String, Vec<u8>>,
    hostname: String,
    /// Set for https: the runtime terminates TLS before the session.
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Http {
    pub fn from_persona(p: &Persona) -> Self {
        // A Windows host is an IIS host; elsewhere the distro's own Apache build.
        let server = p.get("SERVER_HEADER").map_or_else(
            || {
                if p.os_family().starts_with("windows") {
                    "Microsoft-IIS/10.0".to_owned()
                } else {
                    p.stock_version(Stock::ApacheServerHeader).to_owned()
                }
            },
            str::to_owned,
        );
        let product = Product::from_server_header(&server);
        let site_app = p.get("SITE_APP").unwrap_or_default();
        let front = match site_app {
            "nginx_default" => Product::Nginx,
            "iis_default" => Product::Iis,
            "apache_default" => Product::Apache,
            _ => product,
        };
        let extra_headers = p
            .get("EXTRA_HEADERS")
            .and_then(|json| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json).ok()
            })
            .map(|map| {
                map.into_iter()
                    .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .filter(|(k, v)| !k.contains(['\r', '\n', ':']) && !v.contains(['\r', '\n']))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            server,
            product,
            status: p
                .get("RESPONSE_CODE")
                .and_then(|c| c.parse().ok())
                .filter(|c| (100..600).contains(c))
                .unwrap_or(403),
            app: App::from_name(site_app),
            front,
            custom_body: p.get("CUSTOM_BODY").map(str::to_owned),
            extra_headers,
            files: p
                .get("FILES_DIR")
                .map(|d| load_files(Path::new(d)))
                .unwrap_or_default(),
            hostname: p.hostname().to_owned(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[cfg_attr(not(feature = "tls"), allow(clippy::unused_self))]
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The same site behind TLS, with the operator's or a generated certificate.
    #[cfg(feature = "tls")]
    pub fn https_from_persona(p: &Persona) -> Result<Self, crate::tls::TlsError> {
        Ok(Self {
            tls: Some(crate::tls::server_config(p)?),
            ..Self::from_persona(p)
        })
    }
}

/// Static files under `dir`, keyed by URL path, up to [`MAX_FILES_BYTES`] in total.
fn load_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && total + meta.len() <= MAX_FILES_BYTES
                && let (Ok(bytes), Ok(rel)) = (std::fs::read(&path), path.strip_prefix(dir))
            {
                total += meta.len();
                out.insert(format!("/{}", rel.to_string_lossy()), bytes);
            }
        }
    }
    out
}

impl Protocol for Http {
    fn slug(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    fn default_ports(&self) -> &'static [u16] {
        if self.is_tls() { &[443] } else { &[80] }
    }

    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    fn session(&self, conn: &ConnInfo) -> Box<dyn Session> {
        Box::new(HttpSession {
            site: self.clone(),
            buf: Vec::new(),
            wait: None,
            progress: parse::Progress::default(),
            #[cfg(test)]
            parses: 0,
            served: 0,
            port: conn.local.port(),
            done: false,
            clock: now_secs,
        })
    }
}

fn now_secs() -> i64 {
    now_ns() / 1_000_000_000
}

/// RFC 9110 IMF-fixdate, e.g. `Fri, 27 Nov 2026 03:00:00 GMT`.
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0).min(11)];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// One client connection.
#[derive(Debug)]
pub struct HttpSession {
    site: Http,
    buf: Vec<u8>,
    /// What the buffered, incomplete request waits for before it is parsed again.
    wait: Option<parse::Wait>,
    /// How far that request was parsed.
    progress: parse::Progress,
    /// Times the buffer was parsed, for the tests that bound it.
    #[cfg(test)]
    parses: usize,
    served: u32,
    port: u16,
    done: bool,
    clock: fn() -> i64,
}

struct Response {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    extra: Vec<(String, String)>,
}

impl Response {
    fn html(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: "text/html; charset=UTF-8".into(),
            body: body.into_bytes(),
            extra: Vec::new(),
        }
    }
}

fn content_type_of(path: &str) -> &'static str {
    match path
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html",
        Some("txt" | "conf" | "ini" | "log" | "env") => "text/plain",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/x-gzip",
        Some("sql") => "application/sql",
        _ => "application/octet-stream",
    }
}

impl HttpSession {
    fn host<'a>(&'a self, req: Option<&'a Request>) -> &'a str {
        req.and_then(|r| r.header("host"))
            .map_or(self.site.hostname.as_str(), |h| {
                h.split(':').next().unwrap_or(h)
            })
    }

    fn error(&self, status: u16, req: Option<&Request>) -> Response {
        let (body, ctype) = pages::error_page(
            self.site.product,
            status,
            &self.site.server,
            self.host(req),
            self.port,
        );
        Response {
            status,
            content_type: ctype.to_owned(),
            body: body.into_bytes(),
            extra: Vec::new(),
        }
    }

    /// Route one request; returns the response and, for a login, the captured credentials.
    fn route(&self, req: &Request) -> (Response, Option<(String, String)>) {
        let method = req.method.as_str();
        let path = req.path();
        let host = self.host(Some(req)).to_owned();
        match method {
            "GET" | "HEAD" | "POST" => {}
            "OPTIONS" => {
                let mut r = Response::html(200, String::new());
                r.extra
                    .push(("Allow".into(), "GET,POST,OPTIONS,HEAD".into()));
                return (r, None);
            }
            "PUT" | "DELETE" | "PATCH" | "TRACE" | "CONNECT" => {
                return (self.error(405, Some(req)), None);
            }
            _ => return (self.error(501, Some(req)), None),
        }
        if let Some(app) = self.site.app {
            let (login_path, user_field, pass_field) = app.login();
            if app == App::WordPress && path == "/xmlrpc.php" {
                return Self::xmlrpc(req);
            }
            if app == App::WordPress && (path == "/wp-admin" || path.starts_with("/wp-admin/")) {
                let mut r = Response::html(302, String::new());
                r.extra.push((
                    "Location".into(),
                    format!("http://{host}/wp-login.php?redirect_to=%2Fwp-admin%2F&reauth=1"),
                ));
                return (r, None);
            }
            let is_login = path == login_path
                || (app != App::WordPress && (path == "/" || path == "/index.php"));
            if is_login {
                if method == "POST" {
                    let form = parse::form_pairs(&String::from_utf8_lossy(&req.body));
                    let get = |name: &str| {
                        form.iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let creds = (get(user_field), get(pass_field));
                    return (
                        Response::html(200, app.login_page(&host, true)),
                        Some(creds),
                    );
                }
                return (Response::html(200, app.login_page(&host, false)), None);
            }
            if app == App::WordPress && (path == "/" || path == "/index.php") {
                let body = format!(
                    "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta charset=\"UTF-8\" />\n<title>{host} &#8211; Just another WordPress site</title>\n<meta name=\"generator\" content=\"WordPress 6.4.3\" />\n<link rel=\"https://api.w.org/\" href=\"http://{host}/wp-json/\" />\n</head>\n<body class=\"home blog\">\n<header><h1 class=\"site-title\"><a href=\"/\">{host}</a></h1></header>\n<main><article><h2>Hello world!</h2><p>Welcome to WordPress. This is your first post. Edit or delete it, then start writing!</p></article></main>\n</body>\n</html>\n"
                );
                return (Response::html(200, body), None);
            }
        }
        if path == "/" {
            if let Some(body) = &self.site.custom_body {
                return (Response::html(200, body.clone()), None);
            }
            if self.site.files.is_empty() || !self.site.files.contains_key("/index.html") {
                let mut r = Response::html(200, pages::default_site(self.site.front, &host));
                r.content_type = "text/html".into();
                return (r, None);
            }
        }
        let file_path = if path == "/" { "/index.html" } else { path };
        if let Some(bytes) = self.site.files.get(file_path) {
            let r = Response {
                status: 200,
                content_type: content_type_of(file_path).into(),
                body: bytes.clone(),
                extra: Vec::new(),
            };
            return (r, None);
        }
        (self.error(self.site.status, Some(req)), None)
    }

    /// WordPress XML-RPC brute forcing (`wp.getUsersBlogs` and friends) carries the
    /// credentials as the first two `<string>` params.
    fn xmlrpc(req: &Request) -> (Response, Option<(String, String)>) {
        if req.method != "POST" {
            let mut r = Response::html(405, "XML-RPC server accepts POST requests only.".into());
            r.content_type = "text/plain;charset=UTF-8".into();
            return (r, None);
        }
        let body = String::from_utf8_lossy(&req.body);
        let strings: Vec<String> = body
            .split("<string>")
            .skip(1)
            .filter_map(|s| s.split("</string>").next().map(str::to_owned))
            .take(2)
            .collect();
        let creds = match strings.as_slice() {
            [user, pass] => Some((user.clone(), pass.clone())),
            _ => None,
        };
        let fault = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse>\n  <fault>\n    <value>\n      <struct>\n        <member>\n          <name>faultCode</name>\n          <value><int>403</int></value>\n        </member>\n        <member>\n          <name>faultString</name>\n          <value><string>Incorrect username or password.</string></value>\n        </member>\n      </struct>\n    </value>\n  </fault>\n</methodResponse>\n";
        let mut r = Response::html(200, fault.into());
        r.content_type = "text/xml; charset=UTF-8".into();
        (r, creds)
    }

    /// Serialize a response with the product's header order.
    fn write(&self, resp: &Response, head_only: bool, keep_alive: bool, out: &mut Step) {
        let date = http_date((self.clock)());
        let len = resp.body.len();
        let reason = pages::reason(resp.status);
        let mut h: Vec<(String, String)> = Vec::new();
        let server = self.site.server.clone();
        match self.site.product {
            Product::Apache => {
                h.push(("Date".into(), date));
                h.push(("Server".into(), server));
                h.extend(resp.extra.iter().cloned());
                h.extend(self.site.extra_headers.iter().cloned());
                h.push(("Content-Length".into(), len.to_string()));
                if keep_alive {
                    h.push((
                        "Keep-Alive".into(),
                        format!("timeout=5, max={}", MAX_REQUESTS - self.served),
                    ));
                    h.push(("Connection".into(), "Keep-Alive".into()));
                } else {
                    h.push(("Connection".into(), "close".into()));
                }
                h.push(("Content-Type".into(), resp.content_type.clone()));
            }
            Product::Nginx => {
                h.push(("Server".into(), server));
                h.push(("Date".into(), date));
                h.push(("Content-Type".into(), resp.content_type.clone()));
                h.push(("Content-Length".into(), len.to_string()));
                h.push((
                    "Connection".into(),
                    if keep_alive { "keep-alive" } else { "close" }.into(),
                ));
                h.extend(resp.extra.iter().cloned());
                h.extend(self.site.extra_headers.iter().cloned());
            }
            Product::Iis => {
                h.push(("Content-Type".into(), resp.content_type.clone()));
                h.extend(resp.extra.iter().cloned());
                h.push(("Server".into(), server));
                h.push(("X-Powered-By".into(), "ASP.NET".into()));
                h.extend(self.site.extra_headers.iter().cloned());
                h.push(("Date".into(), date));
                if !keep_alive {
                    h.push(("Connection".into(), "close".into()));
                }
                h.push(("Content-Length".into(), len.to_string()));
            }
        }
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
        for (k, v) in h {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.send(head.as_bytes());
        if !head_only {
            out.send(&resp.body);
        }
    }

    fn handle(&mut self, req: &Request, out: &mut Step) {
        self.served += 1;
        let (resp, creds) = self.route(req);
        let keep_alive = req.keep_alive() && self.served < MAX_REQUESTS;
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::Value::String(v.chars().take(512).collect()),
                )
            })
            .collect();
        let headers = serde_json::Value::Object(headers).to_string();
        let body: String =
            String::from_utf8_lossy(&req.body[..req.body.len().min(LOGGED_BODY)]).into_owned();
        let status = resp.status.to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            ("method", &req.method),
            ("path", &req.target),
            ("version", &req.version),
            ("status", &status),
            ("host", req.header("host").unwrap_or_default()),
            ("user_agent", req.header("user-agent").unwrap_or_default()),
            ("headers", &headers),
        ];
        if !body.is_empty() {
            fields.push(("body", &body));
        }
        out.event("request", Severity::Info, &fields);
        if let Some((user, pass)) = &creds {
            let app = match self.site.app {
                Some(App::WordPress) => "wordpress",
                Some(App::PhpMyAdmin) => "phpmyadmin",
                _ => "login_form",
            };
            out.event(
                "login_attempt",
                Severity::Warning,
                &[
                    ("app", app),
                    ("path", req.path()),
                    ("username", user),
                    ("password", pass),
                ],
            );
        }
        self.write(&resp, req.method == "HEAD", keep_alive, out);
        if !keep_alive {
            out.close();
            self.done = true;
        }
    }
}

impl Session for HttpSession {
    fn start(&mut self, _step: &mut Step) {}

    fn receive(&mut self, data: &[u8], step: &mut Step) {
        if self.done {
            return;
        }
        self.buf.extend_from_slice(data);
        // Empty lines before a request are ignored (as Apache does); dropping them here keeps
        // a peer sending nothing else from growing the buffer that every read re-parses.
        let blank = self
            .buf
            .chunks_exact(2)
            .take_while(|pair| *pair == b"\r\n")
            .count();
        self.buf.drain(..blank * 2);
        if let Some(wait) = self.wait
            && blank == 0
            && !wait.met(data, self.buf.len())
        {
            return;
        }
        self.wait = None;
        loop {
            #[cfg(test)]
            {
                self.parses += 1;
            }
            match parse::parse_from(&self.buf, &mut self.progress) {
                Parsed::Incomplete(wait) => {
                    self.wait = Some(wait);
                    break;
                }
                Parsed::Request(req, used) => {
                    self.buf.drain(..used);
                    self.handle(&req, step);
                    if self.done {
                        break;
                    }
                }
                Parsed::Reject(status, why) => {
                    let preview: String =
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(256)]).into_owned();
                    step.event(
                        "bad_request",
                        Severity::Notice,
                        &[
                            ("status", &status.to_string()),
                            ("error", why),
                            ("preview", &preview),
                        ],
                    );
                    let resp = self.error(status, None);
                    self.write(&resp, false, false, step);
                    step.close();
                    self.done = true;
                    self.buf.clear();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
