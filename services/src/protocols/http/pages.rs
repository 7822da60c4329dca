//! What each impersonated web server sends: header order, error pages and default sites,
//! modelled on the real products' stock output.

/// The web server product a persona claims to be, from its `Server` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    Apache,
    Nginx,
    Iis,
}

impl Product {
    pub fn from_server_header(server: &str) -> Self {
        let lower = server.to_ascii_lowercase();
        if lower.contains("nginx") {
            Self::Nginx
        } else if lower.contains("iis") {
            Self::Iis
        } else {
            Self::Apache
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn apache_detail(status: u16) -> &'static str {
    match status {
        400 => {
            "<p>Your browser sent a request that this server could not understand.<br />\n</p>\n"
        }
        401 => {
            "<p>This server could not verify that you\nare authorized to access the document\nrequested.  Either you supplied the wrong\ncredentials (e.g., bad password), or your\nbrowser doesn't understand how to supply\nthe credentials required.</p>\n"
        }
        403 => "<p>You don't have permission to access this resource.</p>\n",
        404 => "<p>The requested URL was not found on this server.</p>\n",
        405 => "<p>The requested method is not allowed for this URL.</p>\n",
        413 => {
            "The requested resource does not allow request data with POST requests, or the amount of data provided in\nthe request exceeds the capacity limit.\n"
        }
        414 => {
            "<p>The requested URL's length exceeds the capacity\nlimit for this server.<br />\n</p>\n"
        }
        _ => {
            "<p>The server encountered an internal error or\nmisconfiguration and was unable to complete\nyour request.</p>\n"
        }
    }
}

/// The product's stock error page (body, content type).
pub fn error_page(
    product: Product,
    status: u16,
    server: &str,
    host: &str,
    port: u16,
) -> (String, &'static str) {
    let reason = reason(status);
    match product {
        Product::Apache => {
            let address = if status == 400 || status == 414 {
                String::new()
            } else {
                format!("<hr>\n<address>{server} Server at {host} Port {port}</address>\n")
            };
            (
                format!(
                    "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n{}{address}</body></html>\n",
                    apache_detail(status)
                ),
                "text/html; charset=iso-8859-1",
            )
        }
        Product::Nginx => (
            format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n"
            ),
            "text/html",
        ),
        Product::Iis => (
            format!(
                "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\"/>\r\n<title>{status} - {reason}.</title>\r\n<style type=\"text/css\">\r\n<!--\r\nbody{{margin:0;font-size:.7em;font-family:Verdana, Arial, Helvetica, sans-serif;background:#EEEEEE;}}\r\nfieldset{{padding:0 15px 10px 15px;}} \r\nh1{{font-size:2.4em;margin:0;color:#FFF;}}\r\nh2{{font-size:1.7em;margin:0;color:#CC0000;}} \r\nh3{{font-size:1.2em;margin:10px 0 0 0;color:#000000;}} \r\n#header{{width:96%;margin:0 0 0 0;padding:6px 2% 6px 2%;font-family:\"trebuchet MS\", Verdana, sans-serif;color:#FFF;\r\nbackground-color:#555555;}}\r\n#content{{margin:0 0 0 2%;position:relative;}}\r\n.content-container{{background:#FFF;width:96%;margin-top:8px;padding:10px;position:relative;}}\r\n-->\r\n</style>\r\n</head>\r\n<body>\r\n<div id=\"header\"><h1>Server Error</h1></div>\r\n<div id=\"content\">\r\n <div class=\"content-container\"><fieldset>\r\n  <h2>{status} - {reason}.</h2>\r\n  <h3>The resource you are looking for might have been removed, had its name changed, or is temporarily unavailable.</h3>\r\n </fieldset></div>\r\n</div>\r\n</body>\r\n</html>\r\n"
            ),
            "text/html",
        ),
    }
}

/// Front page of a stock install of the product.
pub fn default_site(product: Product, host: &str) -> String {
    match product {
        Product::Apache => format!(
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\">\n  <head>\n    <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n    <title>Apache2 Debian Default Page: It works</title>\n  </head>\n  <body>\n    <div class=\"main_page\">\n      <div class=\"page_header floating_element\">\n        <span class=\"floating_element\">Apache2 Debian Default Page</span>\n      </div>\n      <div class=\"content_section floating_element\">\n        <div class=\"section_header section_header_red\"><div id=\"about\"></div>It works!</div>\n        <div class=\"content_section_text\">\n          <p>This is the default welcome page used to test the correct operation of the Apache2 server after installation on Debian systems. If you can read this page, it means that the Apache HTTP server installed at this site is working properly. You should <b>replace this file</b> (located at <tt>/var/www/html/index.html</tt>) before continuing to operate your HTTP server.</p>\n          <p>If you are a normal user of this web site and don't know what this page is about, this probably means that the site is currently unavailable due to maintenance.</p>\n        </div>\n        <div class=\"section_header\"><div id=\"changes\"></div>Configuration Overview</div>\n        <div class=\"content_section_text\">\n          <p>Debian's Apache2 default configuration is different from the upstream default configuration, and split into several files optimized for interaction with Debian tools. The configuration system is <b>fully documented in /usr/share/doc/apache2/README.Debian.gz</b>.</p>\n          <pre>\n/etc/apache2/\n|-- apache2.conf\n|       `--  ports.conf\n|-- mods-enabled\n|       |-- *.load\n|       `-- *.conf\n|-- conf-enabled\n|       `-- *.conf\n|-- sites-enabled\n|       `-- *.conf\n          </pre>\n        </div>\n      </div>\n    </div>\n    <div class=\"validator\"></div>\n  </body>\n</html>\n<!-- {host} -->\n"
        ),
        Product::Nginx => "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n<style>\nhtml { color-scheme: light dark; }\nbody { width: 35em; margin: 0 auto;\nfont-family: Tahoma, Verdana, Arial, sans-serif; }\n</style>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed and\nworking. Further configuration is required.</p>\n\n<p>For online documentation and support please refer to\n<a href=\"http://nginx.org/\">nginx.org</a>.<br/>\nCommercial support is available at\n<a href=\"http://nginx.com/\">nginx.com</a>.</p>\n\n<p><em>Thank you for using nginx.</em></p>\n</body>\n</html>\n".to_owned(),
        Product::Iis => "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\" />\r\n<title>IIS Windows Server</title>\r\n<style type=\"text/css\">\r\n<!--\r\nbody {\r\n\tcolor:#000000;\r\n\tbackground-color:#0072C6;\r\n\tmargin:0;\r\n}\r\n\r\n#container {\r\n\tmargin-left:auto;\r\n\tmargin-right:auto;\r\n\ttext-align:center;\r\n\t}\r\n\r\na img {\r\n\tborder:none;\r\n}\r\n\r\n-->\r\n</style>\r\n</head>\r\n<body>\r\n<div id=\"container\">\r\n<a href=\"http://go.microsoft.com/fwlink/?linkid=66138&amp;clcid=0x409\"><img src=\"iisstart.png\" alt=\"IIS\" width=\"960\" height=\"600\" /></a>\r\n</div>\r\n</body>\r\n</html>".to_owned(),
    }
}

/// A web application the site pretends to host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    WordPress,
    PhpMyAdmin,
    LoginForm,
}

impl App {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "wordpress" => Some(Self::WordPress),
            "phpmyadmin" => Some(Self::PhpMyAdmin),
            "login_form" => Some(Self::LoginForm),
            _ => None,
        }
    }

    /// The login endpoint and the form fields that carry the user name and password.
    pub fn login(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::WordPress => ("/wp-login.php", "log", "pwd"),
            Self::PhpMyAdmin => ("/index.php", "pma_username", "pma_password"),
            Self::LoginForm => ("/login", "username", "password"),
        }
    }

    /// The login page (also the front page for phpMyAdmin and the generic form).
    pub fn login_page(self, host: &str, failed: bool) -> String {
        let error = if failed {
            "<div id=\"login_error\"><strong>Error:</strong> The password you entered is incorrect.</div>\n"
        } else {
            ""
        };
        match self {
            Self::WordPress => format!(
                "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n<title>Log In &lsaquo; {host} &#8212; WordPress</title>\n<meta name='robots' content='max-image-preview:large, noindex, noarchive' />\n<link rel='stylesheet' id='login-css' href='/wp-admin/css/login.min.css?ver=6.4.3' type='text/css' media='all' />\n</head>\n<body class=\"login no-js login-action-login wp-core-ui  locale-en-us\">\n<div id=\"login\">\n<h1><a href=\"https://wordpress.org/\">Powered by WordPress</a></h1>\n{error}<form name=\"loginform\" id=\"loginform\" action=\"/wp-login.php\" method=\"post\">\n<p><label for=\"user_login\">Username or Email Address</label>\n<input type=\"text\" name=\"log\" id=\"user_login\" class=\"input\" value=\"\" size=\"20\" autocapitalize=\"off\" autocomplete=\"username\" required=\"required\" /></p>\n<div class=\"user-pass-wrap\"><label for=\"user_pass\">Password</label>\n<input type=\"password\" name=\"pwd\" id=\"user_pass\" class=\"input password-input\" value=\"\" size=\"20\" autocomplete=\"current-password\" spellcheck=\"false\" required=\"required\" /></div>\n<p class=\"submit\"><input type=\"submit\" name=\"wp-submit\" id=\"wp-submit\" class=\"button button-primary button-large\" value=\"Log In\" />\n<input type=\"hidden\" name=\"redirect_to\" value=\"/wp-admin/\" /><input type=\"hidden\" name=\"testcookie\" value=\"1\" /></p>\n</form>\n<p id=\"nav\"><a href=\"/wp-login.php?action=lostpassword\">Lost your password?</a></p>\n</div>\n</body>\n</html>\n"
            ),
            Self::PhpMyAdmin => format!(
                "<!DOCTYPE HTML>\n<html lang=\"en\" dir=\"ltr\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"referrer\" content=\"no-referrer\">\n<meta name=\"robots\" content=\"noindex,nofollow,notranslate\">\n<title>phpMyAdmin</title>\n<link rel=\"stylesheet\" type=\"text/css\" href=\"./themes/pmahomme/css/theme.css?v=5.2.1\">\n</head>\n<body id=\"loginform\">\n<div class=\"container\">\n<h1>Welcome to <bdo dir=\"ltr\" lang=\"en\">phpMyAdmin</bdo></h1>\n{}<form method=\"post\" id=\"login_form\" action=\"index.php?route=/\" name=\"login_form\" class=\"disableAjax\">\n<fieldset class=\"pma-fieldset\"><legend>Log in</legend>\n<div class=\"item\"><label for=\"input_username\">Username:</label><input type=\"text\" name=\"pma_username\" id=\"input_username\" value=\"\" size=\"24\" class=\"textfield\" autocomplete=\"username\"></div>\n<div class=\"item\"><label for=\"input_password\">Password:</label><input type=\"password\" name=\"pma_password\" id=\"input_password\" value=\"\" size=\"24\" class=\"textfield\" autocomplete=\"current-password\"></div>\n<input type=\"hidden\" name=\"server\" value=\"1\">\n</fieldset>\n<fieldset class=\"pma-fieldset tblFooters\"><input class=\"btn btn-primary\" value=\"Go\" type=\"submit\" id=\"input_go\"></fieldset>\n</form>\n</div>\n<!-- {host} -->\n</body>\n</html>\n",
                if failed {
                    "<div class=\"alert alert-danger\" role=\"alert\">mysqli::real_connect(): (HY000/1045): Access denied for user</div>\n"
                } else {
                    ""
                }
            ),
            Self::LoginForm => format!(
                "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Sign in - {host}</title>\n</head>\n<body>\n<main class=\"login\">\n<h2>Sign in</h2>\n{}<form method=\"post\" action=\"/login\">\n<label>Username <input type=\"text\" name=\"username\" autocomplete=\"username\"></label>\n<label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\"></label>\n<button type=\"submit\">Sign in</button>\n</form>\n</main>\n</body>\n</html>\n",
                if failed {
                    "<p class=\"error\">Invalid username or password.</p>\n"
                } else {
                    ""
                }
            ),
        }
    }
}
