//! One health check of one node: connect (kept open between checks), run a query, and,
//! on a Galera node, read whether it is synced, ready and in the primary component.

use mysql::prelude::Queryable;

/// The wsrep status variables a check reads, as the server reported them (`None`: absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WsrepStatus {
    /// `@@wsrep_on`: `ON` on a Galera node; absent or `OFF` on a plain server.
    pub(crate) on: Option<String>,
    /// `wsrep_ready`.
    pub(crate) ready: Option<String>,
    /// `wsrep_local_state`: 4 is Synced.
    pub(crate) local_state: Option<String>,
    /// `wsrep_cluster_status`: `Primary` when in the primary component.
    pub(crate) cluster_status: Option<String>,
}

/// Whether a node with `status` may be written to; `Err` says why not.
pub(crate) fn judge_wsrep(status: &WsrepStatus) -> Result<(), String> {
    if !is_on(status) {
        return Ok(()); // a plain server
    }
    let ready = status.ready.as_deref().unwrap_or("absent");
    if !ready.eq_ignore_ascii_case("ON") {
        return Err(format!("wsrep_ready {ready}"));
    }
    let state = status.local_state.as_deref().unwrap_or("absent");
    if state != "4" {
        let meaning = match state {
            "1" => "joining",
            "2" => "donor/desynced",
            "3" => "joined",
            _ => "not synced",
        };
        return Err(format!("wsrep_local_state {state} ({meaning})"));
    }
    let cluster = status.cluster_status.as_deref().unwrap_or("absent");
    if cluster != "Primary" {
        return Err(format!(
            "wsrep_cluster_status {cluster} (not the primary component)"
        ));
    }
    Ok(())
}

/// Whether wsrep (Galera replication) is on.
fn is_on(status: &WsrepStatus) -> bool {
    status
        .on
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1")
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What failed: the connect or query error, or the Galera state.
    pub(crate) reason: String,
    /// The node did not answer (connect or query failed or timed out): dead or hung. False
    /// when it answered that it is not synced, ready or primary.
    pub(crate) unreachable: bool,
}

impl Failure {
    fn unreachable(reason: String) -> Failure {
        Failure {
            reason,
            unreachable: true,
        }
    }
}

/// Checks the node `opts` reach over `conn` (opened first if `None`; dropped on any
/// failure to answer, so the next check reconnects).
pub(crate) fn check(conn: &mut Option<mysql::Conn>, opts: &mysql::Opts) -> Result<(), Failure> {
    if conn.is_none() {
        let opened = mysql::Conn::new(opts.clone())
            .map_err(|e| Failure::unreachable(format!("connect: {e}")))?;
        *conn = Some(opened);
    }
    let Some(open) = conn.as_mut() else {
        return Err(Failure::unreachable("no connection".into())); // just set above
    };
    match read_status(open) {
        Ok(status) => judge_wsrep(&status).map_err(|reason| Failure {
            reason,
            unreachable: false,
        }),
        Err(err) => {
            *conn = None;
            Err(Failure::unreachable(format!("query: {err}")))
        }
    }
}

/// Reads `@@wsrep_on` and, on a Galera node, the status variables that say whether it syncs.
fn read_status(conn: &mut mysql::Conn) -> mysql::Result<WsrepStatus> {
    let mut status = WsrepStatus::default();
    let on: Vec<(String, String)> = conn.query("SHOW GLOBAL VARIABLES LIKE 'wsrep\\_on'")?;
    status.on = on.into_iter().next().map(|(_, value)| value);
    if !is_on(&status) {
        return Ok(status); // a plain server: no wsrep status to read
    }
    let rows: Vec<(String, String)> = conn.query(
        "SHOW GLOBAL STATUS WHERE Variable_name IN \
         ('wsrep_ready', 'wsrep_local_state', 'wsrep_cluster_status')",
    )?;
    for (name, value) in rows {
        match name.to_ascii_lowercase().as_str() {
            "wsrep_ready" => status.ready = Some(value),
            "wsrep_local_state" => status.local_state = Some(value),
            "wsrep_cluster_status" => status.cluster_status = Some(value),
            _ => {}
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn galera(ready: &str, state: &str, cluster: &str) -> WsrepStatus {
        WsrepStatus {
            on: Some("ON".into()),
            ready: Some(ready.into()),
            local_state: Some(state.into()),
            cluster_status: Some(cluster.into()),
        }
    }

    #[test]
    fn a_plain_server_is_healthy() {
        assert_eq!(judge_wsrep(&WsrepStatus::default()), Ok(()));
        let off = WsrepStatus {
            on: Some("OFF".into()),
            ..WsrepStatus::default()
        };
        assert_eq!(judge_wsrep(&off), Ok(()));
    }

    #[test]
    fn a_synced_ready_primary_node_is_healthy() {
        assert_eq!(judge_wsrep(&galera("ON", "4", "Primary")), Ok(()));
    }

    #[test]
    fn donors_joiners_and_joined_nodes_are_not() {
        for (state, why) in [
            ("1", "wsrep_local_state 1 (joining)"),
            ("2", "wsrep_local_state 2 (donor/desynced)"),
            ("3", "wsrep_local_state 3 (joined)"),
        ] {
            assert_eq!(
                judge_wsrep(&galera("ON", state, "Primary")),
                Err(why.to_string())
            );
        }
    }

    #[test]
    fn a_node_not_ready_or_outside_the_primary_component_is_not() {
        assert_eq!(
            judge_wsrep(&galera("OFF", "4", "Primary")),
            Err("wsrep_ready OFF".into())
        );
        let err = judge_wsrep(&galera("ON", "4", "non-Primary")).unwrap_err();
        assert!(err.contains("non-Primary"), "{err}");
    }

    #[test]
    fn a_node_that_refuses_connections_is_unreachable() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts: mysql::Opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(port)
            .prefer_socket(false)
            .tcp_connect_timeout(Some(std::time::Duration::from_secs(2)))
            .into();
        let mut conn = None;
        let failure = check(&mut conn, &opts).unwrap_err();
        assert!(failure.unreachable, "{failure:?}");
        assert!(failure.reason.starts_with("connect: "), "{failure:?}");
        assert!(conn.is_none());
    }

    #[test]
    fn missing_status_on_a_galera_node_is_not_healthy() {
        let status = WsrepStatus {
            on: Some("ON".into()),
            ..WsrepStatus::default()
        };
        assert_eq!(judge_wsrep(&status), Err("wsrep_ready absent".into()));
    }
}
