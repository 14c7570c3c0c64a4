//! The targets and the properties each checks.

/// A fuzz target: its name (the corpus folder and the cargo-fuzz target),
/// what it runs, and tokens of its input's language for the mutator.
#[derive(Debug)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    pub dictionary: &'static [&'static [u8]],
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "spec",
        run: spec,
        dictionary: YAML,
    },
    #[cfg(feature = "status")]
    Target {
        name: "status",
        run: status,
        dictionary: YAML,
    },
    Target {
        name: "front_door",
        run: crate::front_door::run,
        dictionary: crate::front_door::TOKENS,
    },
];

const YAML: &[&[u8]] = &[
    b": ",
    b"\n",
    b"\n  ",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"'",
    b"&a ",
    b"*a",
    b"!!str ",
    b"---\n",
    b"...\n",
    b"|\n",
    b">-\n",
    b"#",
    b"~",
    b"null",
    b"true",
    b"0x1f",
    b"1e9",
    b"-1",
    b"\\u0000",
    b"\t",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\xff",
    b"spec:",
    b"metadata:",
    b"name: ",
    b"image: ",
    b"allowFrom:",
    b"lastGood:",
    b"template: ",
    b"rollout:",
    b"groups:",
];

/// The spec parser answers any bytes with an app or with located problems,
/// at most `MAX_PROBLEMS` and one more saying how many were left out.
pub fn spec(bytes: &[u8]) {
    match ccd_spec::parse_bytes(bytes) {
        Ok(app) => {
            let name = &app.metadata.name;
            let dns_label = !name.is_empty()
                && name.len() <= ccd_spec::MAX_APP_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !dns_label {
                panic!("accepted an app name that is not a short DNS label: {name:?}");
            }
        }
        Err(problems) => {
            if problems.0.is_empty() || problems.0.len() > ccd_spec::MAX_PROBLEMS + 1 {
                panic!("{} problems", problems.0.len());
            }
            let lines = bytes.iter().filter(|b| **b == b'\n').count() + 1;
            for p in &problems.0 {
                if p.at.line < 1 || p.at.line > lines || p.at.column < 1 || p.message.is_empty() {
                    panic!("{p} is not located inside the file");
                }
            }
        }
    }
}

/// The status reader takes any bytes without panicking, and what it reads
/// it writes back and reads again to the same status.
#[cfg(feature = "status")]
pub fn status(bytes: &[u8]) {
    let Some(status) = ccd_controller::Status::parse(bytes) else {
        return;
    };
    let written = status.to_yaml();
    match ccd_controller::Status::parse(written.as_bytes()) {
        Some(again) if again == status => {}
        Some(again) => panic!("round trip changed the status:\n{status:?}\n{again:?}\n{written}"),
        None => panic!("cannot read back what was written:\n{written}"),
    }
}
