//! The `url` of `[state]` with `backend = "redis"`: one server
//! (`redis://`, `rediss://`, `redis+unix://`) or a Redis Cluster
//! (`redis+cluster://`, `rediss+cluster://`), checked at load and shown
//! without its password.
//!
//! A cluster URL names seed nodes, comma-separated, with the credentials
//! (and any `?` options) once for all of them, as a managed service hands
//! them out: `rediss+cluster://user:secret@node-1:6379,node-2:6379`. The
//! client learns every other node (and every resharding) from the seeds.
//! There is no database number: a cluster has only database 0.

/// The seed URLs of a cluster URL, each for one node (`redis://` or
/// `rediss://`, with the URL's credentials and options); `None` for a
/// single-server URL; `Err` says what is wrong with a cluster URL.
#[cfg(feature = "redis")]
pub(crate) fn cluster_seeds(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let plain = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    Some(seeds(plain, rest))
}

#[cfg(feature = "redis")]
fn seeds(plain: &str, rest: &str) -> Result<Vec<String>, String> {
    // Credentials end at the last `@` (a password may hold one).
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (hosts, path, query) = match hosts.find(['/', '?']) {
        Some(at) => {
            let (hosts, tail) = hosts.split_at(at);
            match tail.find('?') {
                Some(q) => (hosts, &tail[..q], &tail[q..]),
                None => (hosts, tail, ""),
            }
        }
        None => (hosts, "", ""),
    };
    if !matches!(path, "" | "/" | "/0") {
        return Err(format!(
            "a Redis Cluster has only database 0; remove `{path}` from the URL"
        ));
    }
    let credentials = userinfo.map_or_else(String::new, |u| format!("{u}@"));
    let mut out = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err("an empty node in the list (two commas, or one at an end)".into());
        }
        out.push(format!("{plain}://{credentials}{host}{query}"));
    }
    Ok(out)
}

/// Whether this build can use `url` (parsing only, no network).
#[cfg(feature = "redis")]
pub(crate) fn check(url: &str) -> Result<(), String> {
    if let Some(seeds) = cluster_seeds(url) {
        let seeds = seeds.map_err(|e| format!("`url` {}: {e}", shown_url(url)))?;
        return seeds.iter().try_for_each(|s| check_one(s, url));
    }
    check_one(url, url)
}

#[cfg(feature = "redis")]
fn check_one(url: &str, whole: &str) -> Result<(), String> {
    if redis::parse_redis_url(url).is_none() {
        return Err(format!(
            "`url` {} is not a redis:// URL (one server: redis://, rediss://, redis+unix://; \
             a cluster: redis+cluster://host:port,host:port or rediss+cluster://)",
            shown_url(whole)
        ));
    }
    // Catches what this build cannot use, such as `rediss://` (TLS is not
    // compiled in).
    if let Err(e) = redis::Client::open(url) {
        return Err(format!("`url` {}: {e}", shown_url(whole)));
    }
    Ok(())
}

#[cfg(not(feature = "redis"))]
pub(crate) fn check(_url: &str) -> Result<(), String> {
    Err(
        "backend = \"redis\" needs a mender built with the `redis` feature \
         (the `mender` command has it; embedders: features = [\"redis\"])"
            .into(),
    )
}

/// `url` without its password (and without anything at all if it does not
/// parse), so it can be logged.
#[cfg(feature = "redis")]
pub(crate) fn shown_url(url: &str) -> String {
    if let Some(seeds) = cluster_seeds(url) {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        return match seeds {
            Ok(seeds) => {
                let nodes: Vec<String> = seeds
                    .iter()
                    .map(|s| {
                        let shown = shown_url(s);
                        let node = shown.split_once("://").map_or("", |(_, n)| n);
                        node.trim_end_matches('/').to_owned()
                    })
                    .collect();
                format!("{scheme}://{}", nodes.join(","))
            }
            Err(_) => format!("{scheme}://<unparsable node list>"),
        };
    }
    match redis::parse_redis_url(url) {
        Some(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some(crate::redact::REDACTED));
            }
            u.to_string()
        }
        None => "<unparsable redis url>".into(),
    }
}

/// Without the Redis client there is no URL parser: show the scheme only.
#[cfg(not(feature = "redis"))]
pub(crate) fn shown_url(url: &str) -> String {
    let scheme = url.split_once("://").map_or("redis", |(s, _)| s);
    format!("{scheme}://{}", crate::redact::REDACTED)
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_become_seed_urls() {
        assert_eq!(cluster_seeds("redis://h:1/0"), None);
        assert_eq!(
            cluster_seeds("rediss+cluster://u:p@w@a:1,b:2/?protocol=resp3"),
            Some(Ok(vec![
                "rediss://u:p@w@a:1?protocol=resp3".to_owned(),
                "rediss://u:p@w@b:2?protocol=resp3".to_owned(),
            ]))
        );
        assert_eq!(
            cluster_seeds("redis+cluster://a:1"),
            Some(Ok(vec!["redis://a:1".to_owned()]))
        );
        let e = cluster_seeds("redis+cluster://a:1/3").unwrap().unwrap_err();
        assert!(e.contains("database 0"), "{e}");
        let e = cluster_seeds("redis+cluster://a:1,,b:2")
            .unwrap()
            .unwrap_err();
        assert!(e.contains("empty node"), "{e}");
    }

    #[test]
    fn cluster_passwords_are_not_shown() {
        let shown = shown_url("redis+cluster://user:hunter2@a:1,b:2");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.starts_with("redis+cluster://") && shown.contains("b:2"),
            "{shown}"
        );
        assert!(check("redis+cluster://a:1,b:2").is_ok());
        let e = check("redis+cluster://a:1,b:notaport").unwrap_err();
        assert!(e.contains("redis+cluster://"), "{e}");
    }
}
