//! `GET /services`: uses the app's services as a user's app would, anew on
//! every request, so that a credential that stops working fails a request:
//! a Redis connection logged in with `REDIS_URL` that counts a key of the
//! app's namespace (`<app>:hits`), and a `psql` session with libpq's `PG*`
//! variables that asks who it is. A service the app did not receive is
//! left out of the answer.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// The longest either service may take to answer.
const WITHIN: Duration = Duration::from_secs(5);

/// The count of the app's key after this request's increment.
pub async fn cache(url: &str, app: &str) -> Result<i64, String> {
    let (user, password, address) = parse_redis_url(url)?;
    let work = async {
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cache: cannot connect to {address}: {e}"))?;
        let mut stream = BufReader::new(stream);
        let auth = reply(&mut stream, &["AUTH", &user, &password]).await?;
        if auth != "+OK" {
            return Err(format!("cache: AUTH as {user}: {auth}"));
        }
        let key = format!("{app}:hits");
        let count = reply(&mut stream, &["INCR", &key]).await?;
        count
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("cache: INCR {key}: {count}"))
    };
    tokio::time::timeout(WITHIN, work)
        .await
        .map_err(|_| format!("cache: no answer within {WITHIN:?}"))?
}

/// `current_user` of a fresh session, with the `PG*` variables the app has.
pub async fn sql() -> Result<String, String> {
    let run = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "SELECT current_user",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WITHIN, run)
        .await
        .map_err(|_| format!("sql: no answer within {WITHIN:?}"))?
        .map_err(|e| format!("sql: cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "sql: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Sends one command (RESP array of bulk strings); its reply's first line.
async fn reply(stream: &mut BufReader<TcpStream>, args: &[&str]) -> Result<String, String> {
    let mut command = format!("*{}\r\n", args.len());
    for a in args {
        command.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream
        .get_mut()
        .write_all(command.as_bytes())
        .await
        .map_err(|e| format!("cache: {e}"))?;
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .map_err(|e| format!("cache: {e}"))?;
    Ok(line.trim_end().to_owned())
}

/// `redis://USER:PASSWORD@HOST:PORT[/DB]` → (user, password, `HOST:PORT`).
fn parse_redis_url(url: &str) -> Result<(String, String, String), String> {
    let bad = || "cache: REDIS_URL is not redis://USER:PASSWORD@HOST:PORT".to_owned();
    let rest = url.trim().strip_prefix("redis://").ok_or_else(bad)?;
    let (userinfo, host) = rest.rsplit_once('@').ok_or_else(bad)?;
    let (user, password) = userinfo.split_once(':').ok_or_else(bad)?;
    let address = host.split('/').next().unwrap_or_default();
    if address.is_empty() {
        return Err(bad());
    }
    Ok((user.to_owned(), password.to_owned(), address.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_user_the_password_and_the_address() {
        assert_eq!(
            parse_redis_url("redis://ccd-web:p4ss@127.0.0.1:6379/0\n"),
            Ok((
                "ccd-web".to_owned(),
                "p4ss".to_owned(),
                "127.0.0.1:6379".to_owned()
            ))
        );
        assert!(parse_redis_url("http://x").is_err());
        assert!(parse_redis_url("redis://nopassword@h:1").is_err());
    }
}
