//! Kubernetes' name syntaxes: label keys and values, DNS-1123 labels and subdomains
//! (namespace and object names), and IANA service names (named ports). Each check says
//! what is wrong in words an operator can act on.

use crate::diag::quote;

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63
/// characters of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub(super) fn label_key(key: &str) -> Result<(), String> {
    // Quoted only for an error: this runs for every label and port of every object.
    let invalid = |why: &str| format!("invalid label key {}: {why}", quote(key));
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(invalid("the prefix before '/' is empty"));
        }
        if let Err(why) = dns_subdomain(prefix) {
            return Err(invalid(&format!("prefix {why}")));
        }
    }
    if name.is_empty() {
        return Err(invalid("the name part is empty"));
    }
    if name.len() > 63 {
        return Err(invalid("the name part must be at most 63 characters"));
    }
    if !label_charset(name) {
        return Err(invalid(
            "the name part must consist of alphanumerics, '-', '_' \
             or '.', and start and end with an alphanumeric (e.g. app.kubernetes.io/name)",
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters of alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
pub(super) fn label_value(value: &str) -> Result<(), String> {
    // Quoted only for an error: this runs for every label and port of every object.
    let invalid = |why: &str| format!("invalid label value {}: {why}", quote(value));
    if value.len() > 63 {
        return Err(invalid("must be at most 63 characters"));
    }
    if !value.is_empty() && !label_charset(value) {
        return Err(invalid(
            "must be empty or consist of alphanumerics, '-', '_' \
             or '.', and start and end with an alphanumeric",
        ));
    }
    Ok(())
}

fn label_charset(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 label (namespace names): at most 63 characters of lowercase
/// alphanumerics and `-`, starting and ending alphanumeric.
pub(super) fn dns_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be at most 63 characters".to_string());
    }
    if !dns_label_charset(s) {
        return Err(
            "must consist of lowercase alphanumerics or '-', and start and end with an \
             alphanumeric (a DNS-1123 label, e.g. my-name)"
                .to_string(),
        );
    }
    Ok(())
}

/// A DNS-1123 subdomain (object names, label key prefixes): at most 253 characters,
/// dot-separated DNS labels.
pub(super) fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be at most 253 characters".to_string());
    }
    if !s.split('.').all(dns_label_charset) {
        return Err(
            "must consist of lowercase alphanumerics, '-' or '.', and each dot-separated part \
             must start and end with an alphanumeric (a DNS-1123 subdomain, e.g. example.com)"
                .to_string(),
        );
    }
    Ok(())
}

fn dns_label_charset(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// An IANA service name, which is what a named port must be: at most 15 characters of
/// lowercase letters, digits and `-`, at least one letter, no `-` at either end, no `--`.
pub(super) fn port_name(s: &str) -> Result<(), String> {
    // Quoted only for an error: this runs for every label and port of every object.
    let invalid = |why: &str| format!("invalid port name {}: {why}", quote(s));
    if s.is_empty() || s.len() > 15 {
        return Err(invalid("must be 1 to 15 characters"));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(invalid(
            "only lowercase letters, digits and '-' are allowed",
        ));
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        return Err(invalid("must contain at least one letter"));
    }
    if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
        return Err(invalid("must not start or end with '-' nor contain \"--\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for ok in [
            "app",
            "a",
            "app.kubernetes.io/name",
            "kubernetes.io/metadata.name",
            "A_b-C.d",
            "example.com/X9",
        ] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}/x", "a".repeat(254));
        for bad in [
            "",
            "/app",
            "app/",
            "-app",
            "app-",
            "a b",
            "Example.com/app",
            "a/b/c",
            long_name.as_str(),
            long_prefix.as_str(),
        ] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
        assert!(label_key(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn messages_quote_the_name_and_say_why() {
        assert_eq!(
            label_key("Example.com/app").unwrap_err(),
            format!(
                "invalid label key \"Example.com/app\": prefix {}",
                dns_subdomain("Example.com").unwrap_err()
            )
        );
        assert_eq!(
            label_key("/app").unwrap_err(),
            "invalid label key \"/app\": the prefix before '/' is empty"
        );
        assert_eq!(
            label_value(&"a".repeat(64)).unwrap_err(),
            format!(
                "invalid label value \"{}\": must be at most 63 characters",
                "a".repeat(64)
            )
        );
        assert_eq!(
            port_name("80").unwrap_err(),
            "invalid port name \"80\": must contain at least one letter"
        );
    }

    #[test]
    fn label_values() {
        for ok in ["", "web", "v1.2_3-x", "A"] {
            assert!(label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["-x", "x.", "a b", "a/b", &"a".repeat(64)] {
            assert!(label_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(dns_label("payments-1").is_ok());
        assert!(dns_label("Payments").is_err());
        assert!(dns_label("a.b").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns_label("").is_err());
        assert!(dns_subdomain("ledger-vm.v1").is_ok());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain("x_y").is_err());
    }

    #[test]
    fn port_names() {
        for ok in ["http", "dns-tcp", "h2c", "a1-b2"] {
            assert!(port_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "80",
            "HTTP",
            "-http",
            "http-",
            "ht--tp",
            "a_b",
            "abcdefghijklmnop",
        ] {
            assert!(port_name(bad).is_err(), "{bad}");
        }
    }
}
