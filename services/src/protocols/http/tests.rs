use proptest::prelude::*;

use super::*;

const FIXED: i64 = 1_795_748_400; // Fri, 27 Nov 2026 03:00:00 GMT

fn fixed_clock() -> i64 {
    FIXED
}

fn session(env: &[(&str, &str)]) -> HttpSession {
    let mut pairs = vec![("NODE_NAME", "web01"), ("HOSTNAME", "SRV-WEB-42")];
    pairs.extend_from_slice(env);
    let site = Http::from_persona(&Persona::from_pairs(&pairs));
    HttpSession {
        site,
        buf: Vec::new(),
        wait: None,
        progress: parse::Progress::default(),
        parses: 0,
        served: 0,
        port: 80,
        done: false,
        clock: fixed_clock,
    }
}

fn drive(s: &mut HttpSession, input: &[u8]) -> (String, Step) {
    let mut step = Step::default();
    s.receive(input, &mut step);
    (String::from_utf8_lossy(&step.out).into_owned(), step)
}

#[test]
fn http_date_format() {
    assert_eq!(http_date(FIXED), "Fri, 27 Nov 2026 03:00:00 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

#[test]
fn apache_404_is_byte_identical_in_structure() {
    let mut s = session(&[("RESPONSE_CODE", "404")]);
    let (text, step) = drive(
        &mut s,
        b"GET /nope HTTP/1.1\r\nHost: 10.0.0.5\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
    );
    let body = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n<hr>\n<address>Apache/2.4.62 (Debian) Server at 10.0.0.5 Port 80</address>\n</body></html>\n";
    let expected = format!(
        "HTTP/1.1 404 Not Found\r\nDate: Fri, 27 Nov 2026 03:00:00 GMT\r\nServer: Apache/2.4.62 (Debian)\r\nContent-Length: {}\r\nKeep-Alive: timeout=5, max=99\r\nConnection: Keep-Alive\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(text, expected);
    assert!(!step.close);
    let ev = &step.events[0];
    assert_eq!(ev.kind, "request");
    assert_eq!(ev.field("method"), Some("GET"));
    assert_eq!(ev.field("path"), Some("/nope"));
    assert_eq!(ev.field("status"), Some("404"));
    assert_eq!(ev.field("user_agent"), Some("curl/7.88.1"));
    assert!(ev.field("headers").unwrap().contains("\"Accept\":\"*/*\""));
}

#[test]
fn nginx_persona_and_front_page() {
    let mut s = session(&[("SERVER_HEADER", "nginx/1.18.0 (Ubuntu)")]);
    let (text, _) = drive(
        &mut s,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /admin HTTP/1.0\r\n\r\n",
    );
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nServer: nginx/1.18.0 (Ubuntu)\r\nDate: "));
    assert!(text.contains("<title>Welcome to nginx!</title>"));
    assert!(text.contains("HTTP/1.1 403 Forbidden\r\nServer: nginx/1.18.0 (Ubuntu)"));
    assert!(text.contains("<hr><center>nginx/1.18.0 (Ubuntu)</center>"));
    assert!(text.ends_with("</html>\r\n"));
}

#[test]
fn iis_persona_headers() {
    let mut s = session(&[
        ("SERVER_HEADER", "Microsoft-IIS/10.0"),
        ("SITE_APP", "iis_default"),
    ]);
    let (text, _) = drive(&mut s, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nServer: Microsoft-IIS/10.0\r\nX-Powered-By: ASP.NET\r\nDate: "));
    assert!(text.ends_with("\r\n\r\n"), "HEAD has no body");
}

#[test]
fn wordpress_login_and_xmlrpc_capture_credentials() {
    let mut s = session(&[("SITE_APP", "wordpress")]);
    let (text, step) = drive(
        &mut s,
        b"POST /wp-login.php HTTP/1.1\r\nHost: blog\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 42\r\n\r\nlog=admin&pwd=P%40ssw0rd&wp-submit=Log+In&",
    );
    assert!(text.contains("The password you entered is incorrect."));
    let login = step
        .events
        .iter()
        .find(|e| e.kind == "login_attempt")
        .unwrap();
    assert_eq!(login.field("username"), Some("admin"));
    assert_eq!(login.field("password"), Some("P@ssw0rd"));
    assert_eq!(login.field("app"), Some("wordpress"));
    assert_eq!(login.severity, Severity::Warning);

    let xml = "<?xml version=\"1.0\"?><methodCall><methodName>wp.getUsersBlogs</methodName><params><param><value><string>editor</string></value></param><param><value><string>123456</string></value></param></params></methodCall>";
    let req = format!(
        "POST /xmlrpc.php HTTP/1.1\r\nHost: blog\r\nContent-Length: {}\r\n\r\n{xml}",
        xml.len()
    );
    let (text, step) = drive(&mut s, req.as_bytes());
    assert!(text.contains("Incorrect username or password."));
    let login = step
        .events
        .iter()
        .find(|e| e.kind == "login_attempt")
        .unwrap();
    assert_eq!(
        (login.field("username"), login.field("password")),
        (Some("editor"), Some("123456"))
    );

    let (text, _) = drive(&mut s, b"GET /wp-admin/ HTTP/1.1\r\nHost: blog\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 302 Found\r\n"));
    assert!(
        text.contains("Location: http://blog/wp-login.php?redirect_to=%2Fwp-admin%2F&reauth=1\r\n")
    );
}

#[test]
fn phpmyadmin_front_page_is_the_login() {
    let mut s = session(&[("SITE_APP", "phpmyadmin")]);
    let (text, _) = drive(&mut s, b"GET / HTTP/1.1\r\nHost: db\r\n\r\n");
    assert!(text.contains("<title>phpMyAdmin</title>"));
    let body = "pma_username=root&pma_password=toor&server=1";
    let req = format!(
        "POST /index.php?route=/ HTTP/1.1\r\nHost: db\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (_, step) = drive(&mut s, req.as_bytes());
    let login = step
        .events
        .iter()
        .find(|e| e.kind == "login_attempt")
        .unwrap();
    assert_eq!(
        (login.field("username"), login.field("password")),
        (Some("root"), Some("toor"))
    );
}

#[test]
fn custom_body_extra_headers_and_limits() {
    let mut s = session(&[
        ("CUSTOM_BODY", "<h1>intranet</h1>"),
        (
            "EXTRA_HEADERS",
            "{\"X-Powered-By\": \"PHP/8.1.2\", \"Bad\\r\\nHeader\": \"x\"}",
        ),
    ]);
    let (text, _) = drive(&mut s, b"GET / HTTP/1.0\r\n\r\n");
    assert!(text.contains("X-Powered-By: PHP/8.1.2\r\n"));
    assert!(!text.contains("Bad"));
    assert!(text.ends_with("<h1>intranet</h1>"));
    assert!(text.contains("Connection: close\r\n"));

    let mut s = session(&[]);
    let (text, step) = drive(&mut s, b"GARBAGE\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(step.close);
    assert_eq!(step.events[0].kind, "bad_request");

    let mut s = session(&[]);
    let (text, _) = drive(&mut s, b"BREW /pot HTTP/1.1\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 501 Not Implemented\r\n"));
}

#[test]
fn keep_alive_ends_after_max_requests() {
    let mut s = session(&[]);
    let one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 120).collect();
    let (text, step) = drive(&mut s, &many);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 100);
    assert!(step.close);
    assert!(text.contains("Keep-Alive: timeout=5, max=1\r\n"));
}

#[test]
fn split_at_every_byte() {
    let input = b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 27\r\n\r\nusername=bob&password=hunt2GET / HTTP/1.1\r\n\r\n";
    let mut whole = session(&[("SITE_APP", "login_form")]);
    let (expected, _) = drive(&mut whole, input);
    let mut split = session(&[("SITE_APP", "login_form")]);
    let mut text = String::new();
    for b in input {
        text.push_str(&drive(&mut split, std::slice::from_ref(b)).0);
    }
    assert_eq!(text, expected);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2);
}

proptest! {
    #[test]
    fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1024), 0..8)) {
        let mut s = session(&[("SITE_APP", "wordpress")]);
        for c in &chunks {
            let _ = drive(&mut s, c);
        }
    }
}

#[test]
fn server_header_defaults_follow_the_persona() {
    let mut s = session(&[("DISTRO", "ubuntu22")]);
    let (text, _) = drive(&mut s, b"HEAD / HTTP/1.0\r\n\r\n");
    assert!(
        text.contains("\r\nServer: Apache/2.4.52 (Ubuntu)\r\n"),
        "{text}"
    );
    let mut s = session(&[("OS_FAMILY", "windows_server")]);
    let (text, _) = drive(&mut s, b"HEAD / HTTP/1.0\r\n\r\n");
    assert!(
        text.contains("\r\nServer: Microsoft-IIS/10.0\r\n"),
        "{text}"
    );
}

/// Empty lines before a request are dropped as they come, so a peer sending only those does
/// not grow the buffer each read parses again; the request after them is still served.
#[test]
fn leading_empty_lines_do_not_accumulate() {
    let mut s = session(&[]);
    for _ in 0..1000 {
        let (text, _) = drive(&mut s, &b"\r\n".repeat(8 * 1024));
        assert!(text.is_empty());
    }
    assert!(s.buf.is_empty(), "{} bytes held", s.buf.len());
    let (text, _) = drive(&mut s, b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 "), "{text}");
}

/// Requests fed in pieces of any size are answered as when fed whole, and a request fed a
/// byte at a time is parsed a few times per line or chunk, not once per byte (every parse
/// re-reads the request from its first byte: a chunked body of 1 MiB sent a byte at a time
/// cost a core for hours).
#[test]
fn requests_in_pieces_are_answered_alike_and_parsed_once_per_line_or_chunk() {
    let mut chunked =
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for i in 0..64u8 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend(std::iter::repeat_n(b'a' + i % 26, 1024));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
    let inputs: Vec<Vec<u8>> = vec![
        b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.0\r\n\r\n".to_vec(),
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nuser=rootGET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        chunked.clone(),
    ];
    for input in &inputs {
        let mut whole = session(&[]);
        let (expected, expected_step) = drive(&mut whole, input);
        for piece in [1, 2, 7, 100] {
            let mut s = session(&[]);
            let mut out = String::new();
            let mut events = Vec::new();
            for part in input.chunks(piece) {
                let (text, step) = drive(&mut s, part);
                out.push_str(&text);
                events.extend(step.events);
            }
            assert_eq!(out, expected, "in pieces of {piece}");
            assert_eq!(events, expected_step.events, "in pieces of {piece}");
        }
    }
    let mut s = session(&[]);
    for b in &chunked {
        drive(&mut s, std::slice::from_ref(b));
    }
    assert!(
        s.parses < 300,
        "{} parses for {} bytes",
        s.parses,
        chunked.len()
    );
}

/// A body of many small chunks behind large headers reads the headers once and each chunk
/// once, however it is cut into reads (every wait once re-read the headers and every earlier
/// chunk).
#[test]
fn a_chunked_body_in_pieces_reads_its_head_once() {
    let mut input = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n".to_vec();
    for i in 0..90 {
        input.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(8000)).as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    for _ in 0..5000 {
        input.extend_from_slice(b"1\r\na\r\n");
    }
    input.extend_from_slice(b"0\r\n\r\n");
    let mut whole = session(&[]);
    let (expected, _) = drive(&mut whole, &input);
    assert!(expected.starts_with("HTTP/1.1 "), "{expected}");
    let mut s = session(&[]);
    parse::HEADS_PARSED.with(|n| n.set(0));
    let mut out = String::new();
    for part in input.chunks(3) {
        out.push_str(&drive(&mut s, part).0);
    }
    assert_eq!(out, expected);
    // The head is parsed once per line of it while incomplete, then never again.
    let heads = parse::HEADS_PARSED.with(std::cell::Cell::get);
    assert!(heads <= 100, "{heads} head parses");
}
