//! What a registry's answer says in its headers, read without any I/O: how long
//! `Retry-After` asks to wait, and what a `401`'s `WWW-Authenticate` challenge asks for.

use std::time::Duration;

use reqwest::header;

/// The longest wait a `Retry-After` may ask for; the resource's `timeouts` bound the whole
/// mirror in any case.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// How long `Retry-After` in `headers` asks to wait (seconds or an HTTP date), capped.
pub fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    };
    Some(wait.min(LONGEST_WAIT))
}

/// What a `401` asks for in its `WWW-Authenticate` headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    /// A token from `realm`, for `service` when it names one (a bearer challenge is met
    /// before a basic one).
    Bearer {
        realm: String,
        service: Option<String>,
    },
    /// The credentials themselves, with every request.
    Basic,
    /// Nothing the provider can meet: no challenge it knows, or a bearer one without a realm.
    Unmet,
}

/// The challenge in `headers` (every `WWW-Authenticate` header, each of which may hold
/// several challenges).
pub fn challenge(headers: &header::HeaderMap) -> Challenge {
    let header = headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let challenges = http_auth::parse_challenges(&header).unwrap_or_default();
    let param = |challenge: &http_auth::ChallengeRef<'_>, name: &str| {
        challenge
            .params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.to_unescaped())
    };
    if let Some(bearer) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        return match param(bearer, "realm") {
            Some(realm) => Challenge::Bearer {
                realm,
                service: param(bearer, "service"),
            },
            None => Challenge::Unmet,
        };
    }
    if challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
    {
        Challenge::Basic
    } else {
        Challenge::Unmet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date_and_capped() {
        let mut headers = header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(LONGEST_WAIT));
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            "retry-after",
            httpdate::fmt_http_date(soon).parse().unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
