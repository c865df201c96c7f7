//! The privileges the catalog user needs, and what its grants (`SHOW GRANTS`) allow beyond
//! them: global privileges, `ALL PRIVILEGES`, `GRANT OPTION`, `PROXY`, roles, and anything
//! on another database.
//!
//! Whoever holds the catalog user's password decides every file's owner and mode in the
//! mount, so the user should reach its own database and nothing else.

/// The privileges the catalog user needs on its own database (`GRANT <these> ON db.*`), as
/// `SHOW GRANTS` names them: reading and changing rows; creating and altering tables and
/// indexes for schema migrations; creating, replacing and calling the catalog's stored
/// procedures (a migration drops and recreates them).
pub const NEEDED: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "ALTER",
    "INDEX",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EXECUTE",
];

/// What the grants in `grants` (the lines of `SHOW GRANTS`) allow beyond [`NEEDED`] on
/// `database`: one sentence per finding, naming privileges and objects only (never the
/// whole line, which may carry a password hash). Empty when the user has what it needs and
/// no more.
pub fn excess(grants: &[String], database: &str) -> Vec<String> {
    grants
        .iter()
        .filter_map(|line| judge(line, database))
        .collect()
}

/// The finding for one `SHOW GRANTS` line, if it allows more than needed.
fn judge(line: &str, database: &str) -> Option<String> {
    let Some(body) = line.strip_prefix("GRANT ") else {
        return Some("a grant that could not be read (not GRANT ...)".into());
    };
    let Some((privileges, rest)) = body.split_once(" ON ") else {
        // `GRANT role TO user`: the role's privileges come with it.
        let role = body.split(" TO ").next().unwrap_or(body).trim();
        return Some(format!(
            "has role {role}, whose privileges come with it; grant the needed ones directly"
        ));
    };
    let (object, tail) = rest.split_once(" TO ").unwrap_or((rest, ""));
    let with_grant_option = tail
        .split_once(" WITH ")
        .is_some_and(|(_, with)| with.contains("GRANT OPTION"));
    let names = privilege_names(privileges);
    let target = if names == ["PROXY"] {
        Target::Proxy
    } else {
        Target::parse(object)
    };
    let mut extra: Vec<String> = match &target {
        Target::Global => names.into_iter().filter(|n| n != "USAGE").collect(),
        Target::Proxy => vec!["PROXY".into()],
        Target::Database(db) if db == database => names
            .into_iter()
            .filter(|n| !NEEDED.contains(&n.as_str()))
            .collect(),
        Target::Database(_) | Target::Unknown => names,
    };
    if with_grant_option {
        extra.push("GRANT OPTION".into());
    }
    if extra.is_empty() {
        return None;
    }
    let list = extra.join(", ");
    Some(match target {
        Target::Global => format!("{list} on *.* (every database on the server)"),
        Target::Proxy => format!("PROXY on {object} (can act as another user)"),
        Target::Database(db) if db == database => {
            format!("{list} on {object} (more than the catalog needs)")
        }
        Target::Database(_) => format!("{list} on {object} (another database)"),
        Target::Unknown => format!("{list} on {object}"),
    })
}

/// The privilege names of a grant's list, upper case, column lists dropped
/// (`SELECT (a, b), INSERT` gives `SELECT`, `INSERT`).
fn privilege_names(list: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in list.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => names.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    names.push(current);
    names
        .into_iter()
        .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|n| n.to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// What a grant applies to.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `*.*`.
    Global,
    /// `PROXY ON user`.
    Proxy,
    /// A database, or a table or routine in it (name unescaped).
    Database(String),
    /// Not understood: reported as it is.
    Unknown,
}

impl Target {
    fn parse(object: &str) -> Target {
        let object = object.trim();
        let object = ["PROCEDURE ", "FUNCTION ", "PACKAGE BODY ", "PACKAGE "]
            .iter()
            .find_map(|kind| object.strip_prefix(kind))
            .unwrap_or(object);
        if object == "*.*" {
            return Target::Global;
        }
        match database_name(object) {
            Some(db) => Target::Database(db),
            None => Target::Unknown,
        }
    }
}

/// The database of `` `db`.* `` or `` `db`.`table` `` (or unquoted), with the backquote
/// doubling and the grant wildcards' backslash escapes (`\_`, `\%`) undone.
fn database_name(object: &str) -> Option<String> {
    let raw = if let Some(quoted) = object.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        loop {
            match chars.next()? {
                '`' if chars.peek() == Some(&'`') => {
                    chars.next();
                    name.push('`');
                }
                '`' => break,
                c => name.push(c),
            }
        }
        if chars.next() != Some('.') {
            return None;
        }
        name
    } else {
        object.split_once('.')?.0.to_string()
    };
    let mut name = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            c => name.push(c),
        }
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn needed_privileges_on_its_own_database_are_enough() {
        let minimal = grants(&[
            "GRANT USAGE ON *.* TO `vsadmin`@`127.0.0.1` IDENTIFIED BY PASSWORD '*0123456789ABCDEF'",
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER, CREATE ROUTINE, \
             ALTER ROUTINE, EXECUTE ON `CatalogDb`.* TO `vsadmin`@`127.0.0.1`",
            "GRANT EXECUTE, ALTER ROUTINE ON PROCEDURE `CatalogDb`.`vs_create_node` TO `vsadmin`@`127.0.0.1`",
        ]);
        assert_eq!(excess(&minimal, "CatalogDb"), Vec::<String>::new());
    }

    #[test]
    fn global_and_all_privileges_and_grant_option_are_reported() {
        let found = excess(
            &grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            "CatalogDb",
        );
        assert_eq!(
            found,
            ["ALL PRIVILEGES, GRANT OPTION on *.* (every database on the server)"]
        );
        let found = excess(
            &grants(&["GRANT SUPER, FILE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*SECRETHASH'"]),
            "CatalogDb",
        );
        assert_eq!(found, ["SUPER, FILE on *.* (every database on the server)"]);
        assert!(!found[0].contains("SECRETHASH"));
    }

    #[test]
    fn more_than_needed_on_its_own_database_is_reported() {
        let found = excess(
            &grants(&["GRANT ALL PRIVILEGES ON `CatalogDb`.* TO `vsadmin`@`127.0.0.1`"]),
            "CatalogDb",
        );
        assert_eq!(
            found,
            ["ALL PRIVILEGES on `CatalogDb`.* (more than the catalog needs)"]
        );
        let found = excess(
            &grants(&["GRANT SELECT, DROP, TRIGGER ON `CatalogDb`.* TO `v`@`h` WITH GRANT OPTION"]),
            "CatalogDb",
        );
        assert_eq!(
            found,
            ["DROP, TRIGGER, GRANT OPTION on `CatalogDb`.* (more than the catalog needs)"]
        );
    }

    #[test]
    fn any_privilege_on_another_database_is_reported() {
        let found = excess(
            &grants(&[
                "GRANT SELECT ON `mysql`.`user` TO `v`@`h`",
                "GRANT SELECT (`a`, `b`), INSERT ON `Other\\_Db`.* TO `v`@`h`",
                "GRANT SELECT ON `Catalog%`.* TO `v`@`h`",
            ]),
            "CatalogDb",
        );
        assert_eq!(
            found,
            [
                "SELECT on `mysql`.`user` (another database)",
                "SELECT, INSERT on `Other\\_Db`.* (another database)",
                "SELECT on `Catalog%`.* (another database)",
            ]
        );
        // An escaped wildcard naming exactly the catalog database is the database itself.
        let own = grants(&["GRANT SELECT ON `Catalog\\_Db`.* TO `v`@`h`"]);
        assert_eq!(excess(&own, "Catalog_Db"), Vec::<String>::new());
    }

    #[test]
    fn roles_and_proxy_are_reported() {
        let found = excess(
            &grants(&["GRANT `dba` TO `v`@`h`", "GRANT PROXY ON ''@'%' TO `v`@`h`"]),
            "CatalogDb",
        );
        assert_eq!(
            found,
            [
                "has role `dba`, whose privileges come with it; grant the needed ones directly",
                "PROXY on ''@'%' (can act as another user)",
            ]
        );
    }
}
