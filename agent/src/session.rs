//! One session with etcd: connect, take the host (the `agent` key under a
//! fresh lease), catch up by revision (a full read when it was
//! compacted), then follow the watch, applying each change, and keep the
//! status key current. Any error ends the session; the caller starts
//! another after a back-off. Nothing here stops or restarts a workload:
//! only a changed value reaches `cairn switch`.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};
use futures_util::StreamExt;
use inotify::EventStream;
use serde_json::Value;
use tokio::signal::unix::Signal;

use crate::agent::{Agent, is_state_event};
use crate::host::EMPTY;
use crate::say;

/// How long one request may take before the session is given up.
const REQUEST: Duration = Duration::from_secs(5);

pub enum End {
    /// SIGTERM or SIGINT: the lease was revoked (best effort).
    Stop,
    /// Another agent serves the host: do not start (or go on).
    Refused(String),
    /// The session broke; `synced` when it had caught up first.
    Lost { why: String, synced: bool },
}

fn lost(why: impl std::fmt::Display) -> End {
    End::Lost {
        why: why.to_string(),
        synced: false,
    }
}

async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {} s", REQUEST.as_secs())),
    }
}

async fn connect(a: &Agent) -> Result<Client, String> {
    let mut opts = ConnectOptions::new().with_connect_timeout(Duration::from_secs(3));
    if let (Some(user), Some(pw)) = (&a.args.user, &a.args.password_file) {
        let bytes = crate::files::read_checked(pw)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: missing", pw.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let password = text.lines().next().unwrap_or("").to_string();
        opts = opts.with_user(user.clone(), password);
    }
    if a.args.cacert.is_some() || a.args.cert.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &a.args.cacert {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&a.args.cert, &a.args.key) {
            let c = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
            let k = crate::files::read_checked(key)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{}: missing", key.display()))?;
            tls = tls.identity(Identity::from_pem(c, k));
        }
        opts = opts.with_tls(tls);
    }
    // One endpoint a session, the next one each time: a session that
    // broke (a member stopped) starts again on another member at once,
    // instead of on the client's balanced channel, which may keep picking
    // the member that is gone.
    let n = a.args.etcd.len().max(1);
    let i = NEXT_ENDPOINT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
    let endpoint = a.args.etcd.get(i).cloned().unwrap_or_default();
    within(
        &format!("connect to {endpoint}"),
        Client::connect([endpoint.clone()], Some(opts)),
    )
    .await
}

/// The endpoint the next session connects to (modulo their number).
static NEXT_ENDPOINT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Take the host: put our identity under `lease` if the key is free, ours,
/// or left by a dead agent of this host and runtime dir (we hold its pid
/// file lock, so it is gone); else refuse.
async fn claim(a: &Agent, c: &mut Client, lease: i64) -> Result<Result<(), String>, String> {
    let key = a.keys.agent();
    let me = a.identity.to_string();
    let put = TxnOp::put(
        key.clone(),
        me.clone(),
        Some(PutOptions::new().with_lease(lease)),
    );
    let got = within(&format!("get {key}"), c.get(key.clone(), None)).await?;
    let when = match got.kvs().first() {
        None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        Some(kv) => {
            let theirs: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
            let same_place = theirs["boot_id"] == a.identity["boot_id"]
                && theirs["runtime_dir"] == a.identity["runtime_dir"];
            if kv.value() != me.as_bytes() && !same_place {
                return Ok(Err(format!(
                    "host {}: another cairn-agent serves it ({key} = {}); refusing to start",
                    a.keys.host,
                    String::from_utf8_lossy(kv.value())
                )));
            }
            Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision())
        }
    };
    let t = Txn::new().when([when]).and_then([put]);
    let r = within(&format!("txn on {key}"), c.txn(t)).await?;
    if r.succeeded() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "host {}: {key} changed while taking it (another agent?); refusing",
            a.keys.host
        )))
    }
}

/// Write the status key if it changed (or `force`).
async fn publish(
    a: &mut Agent,
    c: &mut Client,
    lease: i64,
    last: &mut Option<String>,
) -> Result<(), String> {
    let s = a.status();
    if last.as_deref() == Some(s.as_str()) {
        return Ok(());
    }
    let key = a.keys.status();
    within(
        &format!("put {key}"),
        c.put(
            key.clone(),
            s.clone(),
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    a.metrics.status_writes += 1;
    *last = Some(s);
    a.write_metrics();
    Ok(())
}

/// Apply one key's value (`None`: the key was deleted).
async fn apply_key(a: &mut Agent, key: &str, value: Option<&[u8]>, revision: i64) {
    let sandbox = match a.keys.sandbox_of(key) {
        Ok(s) => s.to_string(),
        Err(why) => {
            say!(a, "ignored: {why}");
            return;
        }
    };
    match value {
        Some(v) => {
            let o = a.host.apply(&sandbox, v).await;
            a.record(&sandbox, revision, o);
        }
        None => {
            a.results.remove(&sandbox);
            if a.managed.remove(&sandbox) {
                let o = a.host.apply(&sandbox, EMPTY).await;
                say!(a, "sandbox {sandbox}: key deleted; now runs nothing");
                a.metrics.count(&o);
            }
        }
    }
}

/// Read every key of the host and apply what differs; sandboxes the agent
/// managed whose key is gone are emptied. Returns the revision read at.
async fn full_read(a: &mut Agent, c: &mut Client) -> Result<i64, String> {
    let prefix = a.keys.processes_prefix();
    let got = within(
        &format!("get {prefix}*"),
        c.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let rev = got.header().map(|h| h.revision()).unwrap_or(0);
    a.metrics.full_resyncs += 1;
    say!(a, "full read of {prefix} at revision {rev}");
    let mut seen = std::collections::BTreeSet::new();
    for kv in got.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        if let Ok(s) = a.keys.sandbox_of(&key) {
            seen.insert(s.to_string());
            // Already handled at this revision (a refused value is not
            // checked again).
            if a.results
                .get(s)
                .is_some_and(|r| r.revision == kv.mod_revision())
            {
                continue;
            }
        }
        apply_key(a, &key, Some(kv.value()), kv.mod_revision()).await;
    }
    let gone: Vec<String> = a.managed.difference(&seen).cloned().collect();
    for s in gone {
        apply_key(a, &format!("{prefix}{s}"), None, rev).await;
    }
    a.revision = rev;
    a.save();
    Ok(rev)
}

async fn watch_from(a: &Agent, c: &mut Client, rev: i64) -> Result<WatchStream, String> {
    let prefix = a.keys.processes_prefix();
    within(
        &format!("watch {prefix}*"),
        c.watch(
            prefix.clone(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rev + 1),
            ),
        ),
    )
    .await
}

/// Keep `lease` alive every third of its TTL; ends with why it could not.
async fn keep_alive(mut c: Client, lease: i64, ttl: i64) -> String {
    let (mut keeper, mut stream) = match within("lease keep-alive", c.lease_keep_alive(lease)).await
    {
        Ok(k) => k,
        Err(e) => return e,
    };
    let every = Duration::from_millis((ttl as u64 * 1000) / 3);
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = keeper.keep_alive().await {
            return format!("lease keep-alive: {e}");
        }
        match tokio::time::timeout(every, stream.message()).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {}
            Ok(Ok(Some(_))) => return format!("lease {lease:x} expired"),
            Ok(Ok(None)) => return "lease keep-alive stream ended".into(),
            Ok(Err(e)) => return format!("lease keep-alive: {e}"),
            Err(_) => return "lease keep-alive: no answer".into(),
        }
    }
}

pub async fn run(
    a: &mut Agent,
    changes: &mut EventStream<[u8; 4096]>,
    term: &mut Signal,
    int: &mut Signal,
) -> End {
    let mut c = match connect(a).await {
        Ok(c) => c,
        Err(e) => return lost(e),
    };
    let ttl = a.args.lease_ttl;
    let lease = match within("lease grant", c.lease_grant(ttl, None)).await {
        Ok(l) => l.id(),
        Err(e) => return lost(e),
    };
    match claim(a, &mut c, lease).await {
        Ok(Ok(())) => {}
        Ok(Err(refused)) => {
            let _ = c.lease_revoke(lease).await;
            return End::Refused(refused);
        }
        Err(e) => return lost(e),
    }
    let mut alive = tokio::spawn(keep_alive(c.clone(), lease, ttl));
    let end = follow(a, &mut c, lease, &mut alive, changes, term, int).await;
    alive.abort();
    if matches!(end, End::Stop) {
        // The status disappears at once rather than after the TTL.
        let _ = within("lease revoke", c.lease_revoke(lease)).await;
    }
    end
}

async fn follow(
    a: &mut Agent,
    c: &mut Client,
    lease: i64,
    alive: &mut tokio::task::JoinHandle<String>,
    changes: &mut EventStream<[u8; 4096]>,
    term: &mut Signal,
    int: &mut Signal,
) -> End {
    let mut last_status = None;
    a.metrics.connected = true;
    if a.revision == 0
        && let Err(e) = full_read(a, c).await
    {
        return lost(e);
    }
    let mut watch = match watch_from(a, c, a.revision).await {
        Ok(w) => w,
        Err(e) => return lost(e),
    };
    let mut synced = false;
    say!(a, "watching from revision {}", a.revision + 1);
    loop {
        if let Err(e) = publish(a, c, lease, &mut last_status).await {
            return End::Lost { why: e, synced };
        }
        tokio::select! {
            msg = watch.message() => {
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => return End::Lost { why: "watch ended".into(), synced },
                    Err(e) => return End::Lost { why: format!("watch: {e}"), synced },
                };
                if resp.compact_revision() > 0 || resp.canceled() {
                    say!(a, "revision {} was compacted (oldest kept: {}): full read",
                        a.revision + 1, resp.compact_revision());
                    if let Err(e) = full_read(a, c).await {
                        return End::Lost { why: e, synced };
                    }
                    watch = match watch_from(a, c, a.revision).await {
                        Ok(w) => w,
                        Err(e) => return End::Lost { why: e, synced },
                    };
                    continue;
                }
                synced = true;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    match ev.event_type() {
                        EventType::Put => apply_key(a, &key, Some(kv.value()), kv.mod_revision()).await,
                        EventType::Delete => apply_key(a, &key, None, kv.mod_revision()).await,
                    }
                }
                if let Some(h) = resp.header() && h.revision() > a.revision {
                    a.revision = h.revision();
                }
                a.save();
            }
            ev = changes.next() => {
                if is_state_event(&ev) { a.read_state(); }
            }
            why = &mut *alive => {
                return End::Lost { why: why.unwrap_or_else(|e| format!("keep-alive task: {e}")), synced };
            }
            _ = term.recv() => return End::Stop,
            _ = int.recv() => return End::Stop,
        }
    }
}
