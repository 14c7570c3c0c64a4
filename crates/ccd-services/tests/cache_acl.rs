//! The cache's ACL users against a real Redis 7 (Debian's redis-server,
//! installed by tests/scripts/redis.sh when missing): two apps, each
//! reaching its own keys and channels only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use ccd_services::cache::{self, CacheGrant};
use ccd_services::password;
use ccd_services::resp::{Connection, Reply};

/// A redis-server on a free port, stopped when dropped.
struct Redis {
    _server: tokio::process::Child,
    _dir: tempdir::Dir,
    address: String,
    admin_password: String,
}

mod tempdir {
    /// A folder removed when dropped.
    #[derive(Debug)]
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn redis() -> Redis {
    let bin = ccd_services::testing::redis_server();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("ccd-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let admin_password = password::generate().unwrap();
    // The admin password in a file, never on a command line.
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "bind 127.0.0.1\nport {port}\nsave \"\"\nappendonly no\ndir {}\nrequirepass {admin_password}\n",
            dir.display()
        ),
    )
    .unwrap();
    let server = tokio::process::Command::new(bin)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if Connection::connect(&address).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Redis {
        _server: server,
        _dir: tempdir::Dir(dir),
        address,
        admin_password,
    }
}

async fn admin(r: &Redis) -> Connection {
    let mut c = Connection::connect(&r.address).await.unwrap();
    c.auth("default", &r.admin_password).await.unwrap();
    c
}

/// Provisions `grant` with a new password; a connection as its user.
async fn app(r: &Redis, grant: &CacheGrant) -> (Connection, String) {
    let password = password::generate().unwrap();
    cache::ensure_user(
        &mut admin(r).await,
        grant,
        &[&password::sha256_hex(&password)],
    )
    .await
    .unwrap();
    let mut c = Connection::connect(&r.address).await.unwrap();
    c.auth(&grant.user, &password).await.unwrap();
    (c, password)
}

fn noperm(reply: &Reply) -> bool {
    reply.error_code() == Some("NOPERM")
}

#[tokio::test]
async fn each_app_reaches_its_own_keys_and_nothing_else() {
    let r = redis().await;
    let web = cache::grant("web", None).unwrap();
    let api = cache::grant("api", Some("api-v2:")).unwrap();
    let (mut w, _) = app(&r, &web).await;
    let (mut a, _) = app(&r, &api).await;

    assert!(
        w.call(&["SET", "web:greeting", "hello"])
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        w.call(&["GET", "web:greeting"]).await.unwrap(),
        Reply::Bulk(Some(b"hello".to_vec()))
    );
    assert!(a.call(&["SET", "api-v2:token", "t"]).await.unwrap().is_ok());
    for (what, reply) in [
        (
            "the other's key",
            w.call(&["GET", "api-v2:token"]).await.unwrap(),
        ),
        (
            "a key outside",
            w.call(&["SET", "greeting", "x"]).await.unwrap(),
        ),
        ("FLUSHALL", w.call(&["FLUSHALL"]).await.unwrap()),
        ("KEYS", w.call(&["KEYS", "*"]).await.unwrap()),
        ("SCAN", w.call(&["SCAN", "0"]).await.unwrap()),
        (
            "CONFIG",
            w.call(&["CONFIG", "GET", "requirepass"]).await.unwrap(),
        ),
        ("ACL", w.call(&["ACL", "LIST"]).await.unwrap()),
        (
            "another's channel",
            w.call(&["PUBLISH", "api-v2:events", "x"]).await.unwrap(),
        ),
    ] {
        assert!(noperm(&reply), "{what}: {reply:?}");
    }
    assert!(matches!(
        w.call(&["PUBLISH", "web:events", "x"]).await.unwrap(),
        Reply::Integer(_)
    ));
    assert_eq!(
        a.call(&["GET", "api-v2:token"]).await.unwrap(),
        Reply::Bulk(Some(b"t".to_vec())),
        "FLUSHALL was refused: nothing was lost"
    );
}

#[tokio::test]
async fn a_grant_applied_again_replaces_the_password_and_a_removed_user_cannot_log_in() {
    let r = redis().await;
    let web = cache::grant("web", None).unwrap();
    let (_, first) = app(&r, &web).await;
    let (_, second) = app(&r, &web).await;
    let mut c = Connection::connect(&r.address).await.unwrap();
    let e = c.auth("ccd-web", &first).await.unwrap_err().to_string();
    assert!(e.contains("ccd-web") && !e.contains(&first), "{e}");
    c.auth("ccd-web", &second).await.unwrap();

    let mut admin = admin(&r).await;
    // What Redis keeps of the user is the hash, never the password.
    let users = text(&admin.call(&["ACL", "LIST"]).await.unwrap());
    assert!(users.contains(&password::sha256_hex(&second)), "{users}");
    assert!(!users.contains(&second));
    cache::remove_user(&mut admin, "web").await.unwrap();
    cache::remove_user(&mut admin, "web").await.unwrap();
    let mut c = Connection::connect(&r.address).await.unwrap();
    assert!(c.auth("ccd-web", &second).await.is_err());
}

#[tokio::test]
async fn during_a_rotation_both_passwords_log_in_and_the_retired_one_then_does_not() {
    let r = redis().await;
    let web = cache::grant("web", None).unwrap();
    let (mut old_session, old) = app(&r, &web).await;
    let new = password::generate().unwrap();
    let (old_hash, new_hash) = (password::sha256_hex(&old), password::sha256_hex(&new));
    cache::ensure_user(&mut admin(&r).await, &web, &[&new_hash, &old_hash])
        .await
        .unwrap();
    for p in [&old, &new] {
        let mut c = Connection::connect(&r.address).await.unwrap();
        c.auth("ccd-web", p).await.unwrap();
        assert!(c.call(&["SET", "web:k", "v"]).await.unwrap().is_ok());
    }
    cache::ensure_user(&mut admin(&r).await, &web, &[&new_hash])
        .await
        .unwrap();
    let mut c = Connection::connect(&r.address).await.unwrap();
    assert!(c.auth("ccd-web", &old).await.is_err(), "retired");
    c.auth("ccd-web", &new).await.unwrap();
    // A session that logged in before keeps its grant: an instance being
    // drained is not cut off mid-request.
    assert!(old_session.call(&["GET", "web:k"]).await.is_ok());
}

/// Every string in a reply, one per line.
fn text(reply: &Reply) -> String {
    match reply {
        Reply::Simple(s) | Reply::Error(s) => s.clone(),
        Reply::Integer(n) => n.to_string(),
        Reply::Bulk(b) => String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned(),
        Reply::Array(items) => items
            .iter()
            .flatten()
            .map(text)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}
