//! What a user may type as a store location.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::StoreError;

const FORMS: &str = "write a folder (./dir, /abs/dir, file:///abs/dir) or gs://bucket/prefix";

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local folder, as given (relative paths stay relative to the working directory).
    Folder(PathBuf),
    /// A GCS bucket and key prefix (without leading or trailing `/`, possibly empty).
    Bucket {
        /// The bucket name.
        bucket: String,
        /// The key prefix.
        prefix: String,
    },
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(input: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(invalid(format!("it is empty; {FORMS}")));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            if text.starts_with("gs:") {
                return Err(invalid(format!(
                    "a bucket needs two slashes: gs://{}",
                    text.trim_start_matches("gs:").trim_start_matches('/')
                )));
            }
            return Ok(Self::Folder(PathBuf::from(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "gs" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                check_bucket(bucket).map_err(|reason| invalid(reason.to_owned()))?;
                let prefix = prefix.trim_matches('/');
                if prefix.split('/').any(|part| part == "." || part == "..")
                    || prefix.contains("//")
                {
                    return Err(invalid(
                        "the prefix must not contain '.', '..' or empty segments".to_owned(),
                    ));
                }
                Ok(Self::Bucket {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            "file" => match rest.strip_prefix('/') {
                Some(_) => Ok(Self::Folder(PathBuf::from(rest))),
                None => Err(invalid(
                    "a file URL names an absolute local path, with three slashes: file:///abs/dir"
                        .to_owned(),
                )),
            },
            other => Err(invalid(format!(
                "the scheme {other:?} is not supported; {FORMS}"
            ))),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(path) => write!(f, "{}", path.display()),
            Self::Bucket { bucket, prefix } if prefix.is_empty() => write!(f, "gs://{bucket}"),
            Self::Bucket { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
        }
    }
}

/// GCS bucket names: 3-63 characters of lowercase letters, digits, `-`, `_` and `.`, starting
/// and ending with a letter or digit (dotted names up to 222 are rare and refused here).
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if bucket.is_empty() {
        return Err("the bucket name is missing: gs://BUCKET/PREFIX");
    }
    let bytes = bucket.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| edge_ok(b) || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().copied().is_some_and(edge_ok)
        && bytes.last().copied().is_some_and(edge_ok);
    if valid {
        Ok(())
    } else {
        Err(
            "a bucket name has 3-63 lowercase letters, digits, '-', '_' or '.', \
             and starts and ends with a letter or digit",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreUrl, String> {
        s.parse::<StoreUrl>().map_err(|e| e.to_string())
    }

    #[test]
    fn folders() {
        for (input, path) in [
            ("./dir", "./dir"),
            ("dir", "dir"),
            ("/abs/dir", "/abs/dir"),
            ("file:///abs/dir", "/abs/dir"),
            (" ../up ", "../up"),
        ] {
            assert_eq!(parse(input), Ok(StoreUrl::Folder(path.into())), "{input}");
        }
    }

    #[test]
    fn buckets() {
        let bucket = |b: &str, p: &str| {
            Ok(StoreUrl::Bucket {
                bucket: b.into(),
                prefix: p.into(),
            })
        };
        assert_eq!(parse("gs://my-bucket"), bucket("my-bucket", ""));
        assert_eq!(parse("gs://my-bucket/"), bucket("my-bucket", ""));
        assert_eq!(parse("gs://my-bucket/a/b/"), bucket("my-bucket", "a/b"));
        assert_eq!(parse("GS://b.c_d/x"), bucket("b.c_d", "x"));
        assert_eq!(
            parse("gs://my-bucket/a/b").map(|u| u.to_string()),
            Ok("gs://my-bucket/a/b".into())
        );
    }

    #[test]
    fn errors_name_the_fix() {
        for (input, hint) in [
            ("", "gs://bucket/prefix"),
            ("gs://", "bucket name is missing"),
            ("gs:/b/x", "gs://b/x"),
            ("gs://My_Bucket", "lowercase"),
            ("gs://ab", "3-63"),
            ("gs://b-1/a/../c", "'..'"),
            ("s3://b/x", "not supported"),
            ("file://host/dir", "file:///abs/dir"),
        ] {
            let err = parse(input).err().unwrap_or_default();
            assert!(err.contains(hint), "{input:?}: {err}");
        }
    }
}
