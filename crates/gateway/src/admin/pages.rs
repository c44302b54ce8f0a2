//! The server-rendered pages under `/admin/`: login, status, forwarding and settings, plus the
//! two static assets. Every dynamic text goes through [`escape`]; the script
//! (`assets/admin.js`) takes over the forwarding table after the first render and builds its
//! rows with `textContent` only.
//!
//! The element ids and classes are a contract with the browser tests
//! (docs/CONTRACTS-ADMIN.md): keep them.

use std::fmt::Write as _;

use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER};
use hyper::{Method, Response, StatusCode};

use super::api::{self, MappingView, StatusView};
use super::settings::LiveSettings;
use super::{html, redirect, Admin, Login, Req};
use crate::http::Reply;

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");
/// Rows rendered on the server before the script takes over (its default page size).
pub const FIRST_PAGE_ROWS: usize = 50;

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2024-05-01 12:34:56 UTC` for unix seconds (proleptic Gregorian calendar).
pub fn utc_time(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `permanent`, `59 s`, `00:59:59`, `6 d 23:59:59`: the remaining lease.
pub fn lease_text(seconds: u32) -> String {
    if seconds == 0 {
        return "permanent".into();
    }
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d} d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Reply> {
    let mut r = crate::http::respond(StatusCode::OK, Some(content_type), body);
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

pub(super) async fn route(admin: &Admin, req: Req) -> Response<Reply> {
    let get = req.method == Method::GET || req.method == Method::HEAD;
    match req.path.as_str() {
        "/admin/static/admin.css" if get => return asset(CSS, "text/css; charset=utf-8"),
        "/admin/static/admin.js" if get => return asset(JS, "text/javascript; charset=utf-8"),
        "/admin" => return redirect("/admin/"),
        "/admin/login" => {
            return match req.method {
                Method::GET => html(StatusCode::OK, login_page(None)),
                Method::POST if req.same_origin() => form_login(admin, &req).await,
                Method::POST => html(
                    StatusCode::FORBIDDEN,
                    login_page(Some("Cross-origin login refused.")),
                ),
                _ => not_allowed("GET, POST"),
            }
        }
        _ => {}
    }
    let known = matches!(
        req.path.as_str(),
        "/admin/" | "/admin/forwarding" | "/admin/settings"
    );
    if !known {
        return html(
            StatusCode::NOT_FOUND,
            layout(
                "Not found",
                None,
                "",
                "<h1>Not found</h1><p><a href=\"/admin/\">Status</a></p>",
            ),
        );
    }
    let Some(session) = &req.session else {
        return redirect("/admin/login");
    };
    if !get {
        return not_allowed("GET");
    }
    let csrf = session.csrf.as_str();
    let page = match req.path.as_str() {
        "/admin/" => api::status_view(admin)
            .await
            .map(|s| layout("Status", Some(csrf), "status", &status_body(&s))),
        "/admin/forwarding" => admin.control.snapshot().await.map(|snap| {
            let rows = api::views(&snap);
            layout(
                "Forwarding",
                Some(csrf),
                "forwarding",
                &forwarding_body(&rows, snap.now, admin),
            )
        }),
        _ => admin.control.status().await.map(|s| {
            layout(
                "Settings",
                Some(csrf),
                "settings",
                &settings_body(&s.settings),
            )
        }),
    };
    match page {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => html(
            StatusCode::SERVICE_UNAVAILABLE,
            layout(
                "Unavailable",
                Some(csrf),
                "",
                &format!(
                    "<h1>Unavailable</h1><p class=\"error\">{}</p>",
                    escape(&e.to_string())
                ),
            ),
        ),
    }
}

fn not_allowed(allow: &'static str) -> Response<Reply> {
    let mut r = html(
        StatusCode::METHOD_NOT_ALLOWED,
        layout(
            "Method not allowed",
            None,
            "",
            "<h1>Method not allowed</h1>",
        ),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// The login form posted without script: a redirect on success, the page again with the
/// error otherwise.
async fn form_login(admin: &Admin, req: &Req) -> Response<Reply> {
    let password = super::form_pairs(&req.body)
        .into_iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v)
        .unwrap_or_default();
    match admin.login(req.peer, &password).await {
        Login::Ok { id, .. } => {
            let mut r = redirect("/admin/");
            super::set_cookie(&mut r, &super::session_cookie_header(&id));
            r
        }
        Login::Wrong => html(
            StatusCode::UNAUTHORIZED,
            login_page(Some("Wrong password.")),
        ),
        Login::Limited(wait) => {
            let mut r = html(
                StatusCode::TOO_MANY_REQUESTS,
                login_page(Some(&format!(
                    "Too many failed logins: try again in {wait} s."
                ))),
            );
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(wait));
            r
        }
        Login::Failed(e) => html(StatusCode::INTERNAL_SERVER_ERROR, login_page(Some(&e))),
    }
}

/// The page frame: head with the CSRF token, navigation, main content.
fn layout(title: &str, csrf: Option<&str>, page: &str, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} – Plugline gateway</title>\n",
        escape(title)
    );
    if let Some(token) = csrf {
        let _ = writeln!(
            out,
            "<meta name=\"csrf-token\" content=\"{}\">",
            escape(token)
        );
    }
    out.push_str(
        "<link rel=\"stylesheet\" href=\"/admin/static/admin.css\">\n\
         <script src=\"/admin/static/admin.js\" defer></script>\n</head>\n",
    );
    let _ = write!(
        out,
        "<body data-page=\"{}\">\n<a class=\"skip\" href=\"#main\">Skip to content</a>\n",
        escape(page)
    );
    if csrf.is_some() {
        out.push_str(
            "<header><nav aria-label=\"Admin\"><span class=\"brand\">Plugline gateway</span><ul>",
        );
        for (name, href, label) in [
            ("status", "/admin/", "Status"),
            ("forwarding", "/admin/forwarding", "Forwarding"),
            ("settings", "/admin/settings", "Settings"),
        ] {
            let current = if name == page {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<li><a href=\"{href}\"{current}>{label}</a></li>");
        }
        out.push_str(
            "<li><button type=\"button\" id=\"logout\">Log out</button></li></ul></nav></header>\n",
        );
    }
    let _ = write!(
        out,
        "<main id=\"main\">\n{main}\n</main>\n</body>\n</html>\n"
    );
    out
}

fn login_page(error: Option<&str>) -> String {
    let body = format!(
        "<h1>Plugline gateway</h1>\n\
         <form id=\"login\" method=\"post\" action=\"/admin/login\">\n\
         <label for=\"password\">Admin password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\n\
         <button type=\"submit\">Log in</button>\n\
         <p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>\n\
         </form>\n\
         <p class=\"hint\">The password was printed once to the gateway's log at its first start \
         (<code>admin password (shown once): …</code>), unless <code>admin_password_hash</code> is set \
         in its configuration. To get a new one, delete <code>admin.hash</code> in the state directory \
         and restart the gateway.</p>",
        escape(error.unwrap_or(""))
    );
    layout("Log in", None, "login", &body)
}

fn address_kind_text(s: &StatusView) -> String {
    match (s.address_kind, s.address_range) {
        ("private", _) => "private (double NAT: peers outside see another address)".into(),
        ("reserved", Some(range)) => format!("reserved ({range})"),
        (kind, _) => kind.into(),
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn status_body(s: &StatusView) -> String {
    let mut per_host = String::new();
    for (host, n) in &s.mappings.per_host {
        let _ = write!(per_host, "<tr><td>{host}</td><td>{n}</td></tr>");
    }
    if per_host.is_empty() {
        per_host.push_str("<tr class=\"empty\"><td colspan=\"2\">No mappings.</td></tr>");
    }
    format!(
        "<h1>Status</h1>\n\
         <dl class=\"facts\">\n\
         <dt>WAN address</dt><dd id=\"wan-address\">{wan}</dd>\n\
         <dt>Address kind</dt><dd id=\"address-kind\">{kind}</dd>\n\
         <dt>Connection</dt><dd id=\"connection-status\">{conn}</dd>\n\
         <dt>Uptime</dt><dd id=\"uptime\" data-seconds=\"{up}\">{uptext}</dd>\n\
         <dt>BOOTID</dt><dd id=\"boot-id\">{boot}</dd>\n\
         <dt>Backend</dt><dd id=\"backend\">{backend}</dd>\n\
         <dt>Mappings</dt><dd id=\"mapping-count\">{total}</dd>\n\
         <dt>UDP / TCP</dt><dd><span id=\"mapping-count-udp\">{udp}</span> UDP, <span id=\"mapping-count-tcp\">{tcp}</span> TCP</dd>\n\
         </dl>\n\
         <h2>Protocols</h2>\n\
         <dl class=\"facts\" id=\"protocols\">\n\
         <dt>UPnP IGD</dt><dd id=\"protocol-upnp\">{upnp}</dd>\n\
         <dt>NAT-PMP</dt><dd id=\"protocol-natpmp\">{natpmp}</dd>\n\
         <dt>PCP</dt><dd id=\"protocol-pcp\">{pcp}</dd>\n\
         </dl>\n\
         <h2>Mappings per LAN host</h2>\n\
         <div class=\"table-wrap\"><table id=\"per-host\"><thead><tr><th scope=\"col\">LAN host</th><th scope=\"col\">Mappings</th></tr></thead>\n\
         <tbody>{per_host}</tbody></table></div>",
        wan = escape(s.external_ip.as_deref().unwrap_or("unknown")),
        kind = escape(&address_kind_text(s)),
        conn = escape(s.connection_status),
        up = s.uptime_seconds,
        uptext = escape(&uptime_text(s.uptime_seconds)),
        boot = s.boot_id,
        backend = escape(s.backend),
        total = s.mappings.total,
        udp = s.mappings.udp,
        tcp = s.mappings.tcp,
        upnp = on_off(s.protocols.upnp),
        natpmp = on_off(s.protocols.natpmp),
        pcp = on_off(s.protocols.pcp),
    )
}

fn uptime_text(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d} d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// The column headers: (sort key, label).
const COLUMNS: [(&str, &str); 9] = [
    ("description", "Description"),
    ("protocol", "Protocol"),
    ("external_port", "External port"),
    ("internal_client", "Internal client"),
    ("internal_port", "Internal port"),
    ("lease_seconds", "Lease left"),
    ("source", "Source"),
    ("created_at", "Created"),
    ("host_last_seen", "Host last seen"),
];

fn row(m: &MappingView, now: u64) -> String {
    let key = escape(&m.key);
    let label = format!(
        "{} {} to {}:{}",
        m.protocol, m.external_port, m.internal_client, m.internal_port
    );
    let last_seen = match m.host_last_seen {
        Some(at) => format!(
            "<time datetime=\"{at}\" data-unix=\"{at}\">{} s ago</time>",
            now.saturating_sub(at)
        ),
        None => "never (since start)".into(),
    };
    format!(
        "<tr data-key=\"{key}\" class=\"{cls}\">\
         <td class=\"pick\"><input type=\"checkbox\" class=\"select\" aria-label=\"Select {label}\"></td>\
         <td class=\"description\" data-label=\"Description\">{desc}</td>\
         <td class=\"protocol\" data-label=\"Protocol\">{proto}</td>\
         <td class=\"external-port\" data-label=\"External port\">{ext}</td>\
         <td class=\"internal-client\" data-label=\"Internal client\">{client}</td>\
         <td class=\"internal-port\" data-label=\"Internal port\">{int}</td>\
         <td class=\"lease\" data-label=\"Lease left\" data-seconds=\"{lease}\">{lease_text}</td>\
         <td class=\"source\" data-label=\"Source\">{source}</td>\
         <td class=\"created\" data-label=\"Created\"><time data-unix=\"{created}\">{created_text}</time></td>\
         <td class=\"last-seen\" data-label=\"Host last seen\">{last_seen}</td>\
         <td class=\"actions\"><button type=\"button\" class=\"toggle\" aria-label=\"{toggle} {label}\">{toggle}</button> \
         <button type=\"button\" class=\"delete\" aria-label=\"Delete {label}\">Delete</button></td></tr>\n",
        cls = if m.enabled { "enabled" } else { "disabled" },
        label = escape(&label),
        desc = escape(&m.description),
        proto = m.protocol,
        ext = m.external_port,
        client = escape(&m.internal_client),
        int = m.internal_port,
        lease = m.lease_seconds,
        lease_text = lease_text(m.lease_seconds),
        source = m.source,
        created = m.created_at,
        created_text = utc_time(m.created_at),
        toggle = if m.enabled { "Disable" } else { "Enable" },
    )
}

fn forwarding_body(rows: &[MappingView], now: u64, admin: &Admin) -> String {
    let mut out = String::with_capacity(4096 + rows.len().min(FIRST_PAGE_ROWS) * 900);
    out.push_str("<h1>Port forwarding</h1>\n");
    out.push_str(
        "<div class=\"toolbar\">\n\
         <label for=\"filter\">Filter</label>\
         <input id=\"filter\" type=\"search\" placeholder=\"description, host, port…\" autocomplete=\"off\">\n\
         <label for=\"page-size\">Rows per page</label>\
         <select id=\"page-size\"><option value=\"10\">10</option><option value=\"25\">25</option>\
         <option value=\"50\" selected>50</option><option value=\"100\">100</option>\
         <option value=\"500\">500</option><option value=\"0\">All</option></select>\n\
         <label for=\"sort-by\" class=\"sort-mobile\">Sort by</label>\
         <select id=\"sort-by\" class=\"sort-mobile\"><option value=\"\">Protocol and port</option>\
         <option value=\"description\">Description</option><option value=\"internal_client\">Internal client</option>\
         <option value=\"lease_seconds\">Lease left</option><option value=\"source\">Source</option>\
         <option value=\"created_at\">Created</option><option value=\"host_last_seen\">Host last seen</option></select>\n\
         <button type=\"button\" id=\"delete-selected\">Delete selected</button>\n\
         <span class=\"stale\"><label for=\"stale-minutes\">Delete mappings of hosts not seen for</label> \
         <input id=\"stale-minutes\" type=\"text\" inputmode=\"numeric\" value=\"60\" size=\"5\"> minutes \
         <button type=\"button\" id=\"delete-stale\">Delete stale</button></span>\n\
         </div>\n\
         <p id=\"table-status\" role=\"status\" aria-live=\"polite\"></p>\n",
    );
    let _ = write!(
        out,
        "<div class=\"table-wrap\"><table id=\"mappings\" data-now=\"{now}\">\n\
         <caption>Total: <span id=\"mapping-total\">{}</span>. Click a column heading to sort; \
         leases count down and the table follows the gateway every second.</caption>\n\
         <thead><tr><th scope=\"col\" class=\"pick\"><input type=\"checkbox\" id=\"select-all\" aria-label=\"Select all shown\"></th>",
        rows.len()
    );
    for (key, label) in COLUMNS {
        let _ = write!(
            out,
            "<th scope=\"col\" data-sort=\"{key}\" tabindex=\"0\" aria-sort=\"none\">{label}</th>"
        );
    }
    out.push_str("<th scope=\"col\">Actions</th></tr></thead>\n<tbody>\n");
    for m in rows.iter().take(FIRST_PAGE_ROWS) {
        out.push_str(&row(m, now));
    }
    if rows.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"11\">No mappings.</td></tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    let pages = rows.len().div_ceil(FIRST_PAGE_ROWS).max(1);
    let _ = writeln!(
        out,
        "<nav id=\"pager\" aria-label=\"Pages\">\
         <button type=\"button\" id=\"page-prev\" disabled>Previous</button> \
         <span id=\"page-info\">Page 1 of {pages}</span> \
         <button type=\"button\" id=\"page-next\"{}>Next</button></nav>",
        if pages > 1 { "" } else { " disabled" }
    );
    let _ = write!(
        out,
        "<section aria-labelledby=\"add-title\">\n<h2 id=\"add-title\">Add a static forward</h2>\n\
         <form id=\"add-static\" novalidate>\n\
         <div class=\"fields\">\
         <label>Protocol <select name=\"protocol\"><option value=\"UDP\">UDP</option><option value=\"TCP\">TCP</option></select></label>\n\
         <label>External port <input name=\"external_port\" type=\"text\" inputmode=\"numeric\" required></label>\n\
         <label>Internal client <input name=\"internal_client\" type=\"text\" inputmode=\"decimal\" placeholder=\"{lan}\" required></label>\n\
         <label>Internal port <input name=\"internal_port\" type=\"text\" inputmode=\"numeric\" required></label>\n\
         <label>Description <input name=\"description\" type=\"text\" maxlength=\"256\"></label>\n\
         <label>Lease, seconds (0 = permanent) <input name=\"lease\" type=\"text\" inputmode=\"numeric\" value=\"0\"></label>\n\
         </div>\n<button type=\"submit\">Add forward</button>\n\
         <p id=\"add-error\" class=\"error\" role=\"alert\"></p>\n\
         </form>\n</section>",
        lan = admin.info.lan_addr
    );
    out
}

fn settings_body(s: &LiveSettings) -> String {
    let checked = |on: bool| if on { " checked" } else { "" };
    format!(
        "<h1>Settings</h1>\n\
         <p>Changes apply at once, without a restart, and are kept in <code>settings.toml</code> in the \
         state directory (over the configuration file). Lower limits apply to new mappings.</p>\n\
         <form id=\"settings\" novalidate>\n\
         <div class=\"check\"><input type=\"checkbox\" id=\"secure_mode\" name=\"secure_mode\"{secure}>\
         <label for=\"secure_mode\">Secure mode: a LAN host may map ports only to itself</label></div>\n\
         <div class=\"check\"><input type=\"checkbox\" id=\"upnp_enabled\" name=\"upnp_enabled\"{upnp}>\
         <label for=\"upnp_enabled\">UPnP IGD (when off, clients' requests fail with error 501)</label></div>\n\
         <label for=\"max_mappings\">Most mappings in total (1–131070)</label>\
         <input id=\"max_mappings\" name=\"max_mappings\" type=\"text\" inputmode=\"numeric\" value=\"{max}\">\n\
         <label for=\"max_mappings_per_host\">Most mappings per LAN host (1–131070)</label>\
         <input id=\"max_mappings_per_host\" name=\"max_mappings_per_host\" type=\"text\" inputmode=\"numeric\" value=\"{per_host}\">\n\
         <label for=\"max_lease_seconds\">Longest lease, seconds (1–604800)</label>\
         <input id=\"max_lease_seconds\" name=\"max_lease_seconds\" type=\"text\" inputmode=\"numeric\" value=\"{lease}\">\n\
         <p class=\"note\">NAT-PMP and PCP are not available on this gateway yet.</p>\n\
         <button type=\"submit\">Save</button>\n\
         <p id=\"settings-error\" class=\"error\" role=\"alert\"></p>\n\
         <p id=\"settings-saved\" class=\"ok\" role=\"status\"></p>\n\
         </form>",
        secure = checked(s.secure_mode),
        upnp = checked(s.upnp_enabled),
        max = s.max_mappings,
        per_host = s.max_mappings_per_host,
        lease = s.max_lease_seconds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn lease_texts() {
        assert_eq!(lease_text(0), "permanent");
        assert_eq!(lease_text(59), "00:00:59");
        assert_eq!(lease_text(3661), "01:01:01");
        assert_eq!(lease_text(604_800), "7 d 00:00:00");
    }
}
