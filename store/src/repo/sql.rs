//! The SQL dialect differences between the three backends, and a small builder that numbers
//! placeholders for the backend and keeps the bound values in order.

use sqlx::{
    Any,
    any::AnyArguments,
    query::{Query, QueryAs, QueryScalar},
};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    /// The backend of a `sqlite:`, `postgres:`/`postgresql:`, `mysql:`/`mariadb:` URL.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    /// `INSERT` that skips rows whose unique key already exists.
    pub fn insert_ignore(self) -> &'static str {
        match self {
            Self::Mysql => "INSERT IGNORE INTO",
            _ => "INSERT INTO",
        }
    }

    /// Suffix completing [`Self::insert_ignore`].
    pub fn on_conflict_ignore(self) -> &'static str {
        match self {
            Self::Mysql => "",
            _ => " ON CONFLICT DO NOTHING",
        }
    }

    /// Upsert suffix: on a clash of `key`, overwrite `cols`.
    pub fn upsert(self, key: &str, cols: &[&str]) -> String {
        self.upsert_keeping("", key, cols, &[])
    }

    /// [`Self::upsert`] into `table`, where a column of `kept` given as an empty string keeps
    /// its stored value: a writer passes a long list it has not changed as `''` instead of
    /// rewriting it.
    pub fn upsert_keeping(self, table: &str, key: &str, cols: &[&str], kept: &[&str]) -> String {
        let sets: Vec<String> = cols
            .iter()
            .map(|c| match (self, kept.contains(c)) {
                (Self::Mysql, false) => format!("{c} = VALUES({c})"),
                (Self::Mysql, true) => format!("{c} = IF(VALUES({c}) = '', {c}, VALUES({c}))"),
                (_, false) => format!("{c} = excluded.{c}"),
                (_, true) => format!(
                    "{c} = CASE WHEN excluded.{c} = '' THEN {table}.{c} ELSE excluded.{c} END"
                ),
            })
            .collect();
        match self {
            Self::Mysql => format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", ")),
            _ => format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", ")),
        }
    }

    /// Integer division of two integer expressions.
    pub fn idiv(self, a: &str, b: &str) -> String {
        match self {
            Self::Mysql => format!("({a} DIV {b})"),
            _ => format!("({a} / {b})"),
        }
    }

    /// Case-insensitive LIKE operator.
    pub fn ilike(self) -> &'static str {
        match self {
            Self::Postgres => "ILIKE",
            _ => "LIKE",
        }
    }

    /// The text of JSON member `path_ph` (a bound `$."key"` path, or the key itself on
    /// PostgreSQL) of column `col`.
    pub fn json_text(self, col: &str, path_ph: &str) -> String {
        match self {
            Self::Sqlite => format!("json_extract({col}, {path_ph})"),
            Self::Postgres => format!("({col}::json ->> {path_ph})"),
            Self::Mysql => format!("JSON_UNQUOTE(JSON_EXTRACT({col}, {path_ph}))"),
        }
    }

    /// The bound value for [`Self::json_text`] selecting member `key`.
    pub fn json_path(self, key: &str) -> String {
        match self {
            Self::Postgres => key.to_owned(),
            _ => format!("$.\"{}\"", key.replace('"', "")),
        }
    }
}

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    I64(i64),
    Text(String),
    OptText(Option<String>),
    OptI64(Option<i64>),
    Bytes(Vec<u8>),
    F64(f64),
    OptF64(Option<f64>),
}

/// Bind every argument in order (the three sqlx query kinds share `bind` but no trait).
macro_rules! bind_all {
    ($q:ident, $args:expr) => {{
        for arg in &$args {
            $q = match arg {
                Arg::I64(v) => $q.bind(*v),
                Arg::Text(v) => $q.bind(v.as_str()),
                Arg::OptText(v) => $q.bind(v.as_deref()),
                Arg::OptI64(v) => $q.bind(*v),
                Arg::Bytes(v) => $q.bind(v.as_slice()),
                Arg::F64(v) => $q.bind(*v),
                Arg::OptF64(Some(v)) => $q.bind(*v),
                // sqlx 0.9.0's Any driver swaps the NULL kinds of f32 and f64 (a NULL f64 is
                // sent to PostgreSQL as float4, and the cached statement then rejects the
                // next row's 8-byte float8): a NULL f32 arrives as the float8 NULL we mean.
                Arg::OptF64(None) => $q.bind(Option::<f32>::None),
            };
        }
        $q
    }};
}

/// SQL text with backend-numbered placeholders and its arguments.
#[derive(Debug)]
pub struct Sql {
    backend: Backend,
    pub text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(backend: Backend, text: &str) -> Self {
        Self {
            backend,
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Append literal SQL.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// A placeholder for `arg`, appended to nothing: the caller places it (for expressions that
    /// wrap the placeholder).
    pub fn ph(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        match self.backend {
            Backend::Postgres => format!("${}", self.args.len()),
            _ => "?".to_owned(),
        }
    }

    /// Append a placeholder bound to `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        let ph = self.ph(arg);
        self.text.push_str(&ph);
        self
    }

    /// Bind `values` as a comma-separated list and close it with `)`: the tail of an `… IN (`
    /// the caller opened.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Arg>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.text.as_str()));
        bind_all!(q, self.args)
    }

    pub fn query_as<T>(&self) -> QueryAs<'_, Any, T, AnyArguments>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(self.text.as_str()));
        bind_all!(q, self.args)
    }

    pub fn scalar<T>(&self) -> QueryScalar<'_, Any, T, AnyArguments>
    where
        (T,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(self.text.as_str()));
        bind_all!(q, self.args)
    }
}

/// Text safe for every backend's TEXT columns: PostgreSQL refuses NUL characters, and attacker
/// input carries them.
pub fn clean_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_owned()
    }
}

/// [`clean_text`] of an owned string: no copy when it holds no NUL.
pub fn clean_owned(s: String) -> String {
    if s.contains('\0') { clean_text(&s) } else { s }
}

/// [`clip_chars`] of an owned string: no copy when it fits and holds no NUL.
pub fn clip_owned(s: String, max: usize) -> String {
    let mut cleaned = clean_owned(s);
    if let Some((end, _)) = cleaned.char_indices().nth(max) {
        cleaned.truncate(end);
    }
    cleaned
}

/// At most `max` characters of `s` (VARCHAR(n) columns count characters).
pub fn clip_chars(s: &str, max: usize) -> String {
    let cleaned = clean_text(s);
    match cleaned.char_indices().nth(max) {
        Some((end, _)) => cleaned[..end].to_owned(),
        None => cleaned,
    }
}
