//! The two facts the supervisor needs from `/proc/<pid>/stat`.

use std::io;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: `R`, `S`, `Z` (zombie), ...
    pub(crate) state: char,
    /// Field 22: clock ticks after boot when the process started. Together
    /// with the pid it identifies a process across pid reuse.
    pub(crate) start_time: u64,
}

impl ProcStat {
    pub(crate) fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Reads `/proc/<pid>/stat`; `NotFound` when no such process exists.
pub(crate) fn read(pid: u32) -> io::Result<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat: {stat:?}"),
        )
    })
}

fn parse(stat: &str) -> Option<ProcStat> {
    // Field 2 is the command name in parentheses and may itself contain
    // spaces and parentheses, so count fields from the last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4 to 21 lie between the state and the start time.
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let stat = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse(stat),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
    }

    #[test]
    fn reads_its_own_process() {
        let own = read(std::process::id()).unwrap();
        assert_ne!(own.state, 'Z');
        assert!(own.start_time > 0);
    }
}
