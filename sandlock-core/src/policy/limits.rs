//! Resource limits as the policy holds them (`--memory`, `--pids`,
//! `--cpu`, `--open-files`, `--file-size`, `--disk`): parsed once into
//! typed values with their bounds checked, so the stages that enforce
//! them (see `crate::limits`) never see text.
//!
//! Must never decide how a limit is enforced: that depends on the host,
//! and this module only knows the user's words.

use std::fmt;

use crate::{Error, Result};

/// A size in bytes, written with binary units (`256M` is 256 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(u64);

impl Size {
    /// `text` as given to `flag`: a number of bytes with an optional unit
    /// (`K`, `M`, `G`, `T`, also spelled `KiB`, `MB`, ...; all binary),
    /// at least `min` bytes.
    pub fn parse(flag: &'static str, text: &str, min: u64) -> Result<Size> {
        let bytes = parse_size::Config::new()
            .with_binary()
            .parse_size(text.trim())
            .map_err(|e| {
                Error::invalid(
                    flag,
                    text,
                    format!("expected a size such as 256M or 2G ({e})"),
                )
            })?;
        if bytes < min {
            return Err(Error::invalid(
                flag,
                text,
                format!("must be at least {}", Size(min)),
            ));
        }
        Ok(Size(bytes))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    /// The largest binary unit that divides the size: `256M`, `1536K`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "T"),
            (1 << 30, "G"),
            (1 << 20, "M"),
            (1 << 10, "K"),
        ];
        for (unit, suffix) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{suffix}", self.0 / unit);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// A share of CPU time, in thousandths of one CPU (`0.5` is 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuShare(u32);

impl CpuShare {
    /// The most a share may be: more CPUs than any host has.
    const MAX_CPUS: u32 = 4096;

    /// `text` as given to `--cpu`: a fraction of one CPU (`0.5`), or more
    /// than one (`2` is two CPUs' worth), with at most three decimals.
    pub fn parse(text: &str) -> Result<CpuShare> {
        let bad = |why: &str| Error::invalid("--cpu", text, why.to_string());
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(bad("expected a share of one CPU such as 0.5 or 2"));
        }
        if frac.len() > 3 {
            return Err(bad("at most three decimals (thousandths of a CPU)"));
        }
        let whole: u32 = match whole {
            "" => 0,
            w => w
                .parse()
                .ok()
                .filter(|w| *w <= Self::MAX_CPUS)
                .ok_or_else(|| bad("more CPUs than a host has"))?,
        };
        let mut thousandths: u32 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let place = [100, 10, 1][i];
            thousandths += u32::from(b - b'0') * place;
        }
        let share = whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(thousandths))
            .ok_or_else(|| bad("more CPUs than a host has"))?;
        if share == 0 {
            return Err(bad("must be more than 0"));
        }
        Ok(CpuShare(share))
    }

    /// Thousandths of one CPU.
    pub fn thousandths(self) -> u32 {
        self.0
    }
}

impl fmt::Display for CpuShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:03}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// The limits of one sandbox; `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory of the whole tree (`--memory`).
    pub memory: Option<Size>,
    /// Processes and threads of the tree (`--pids`).
    pub pids: Option<u32>,
    /// CPU time of the tree, as a share of one CPU (`--cpu`).
    pub cpu: Option<CpuShare>,
    /// Open file descriptors per process (`--open-files`).
    pub open_files: Option<u64>,
    /// Largest file a process may write (`--file-size`).
    pub file_size: Option<Size>,
    /// Bytes the workload may write into its private TMPDIR and HOME
    /// (`--disk`).
    pub disk: Option<Size>,
}

/// One kind of limit, as reports and errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--memory`.
    Memory,
    /// `--pids`.
    Pids,
    /// `--cpu`.
    Cpu,
    /// `--open-files`.
    OpenFiles,
    /// `--file-size`.
    FileSize,
    /// `--disk`.
    Disk,
}

impl Limit {
    /// Every limit, in the order `sandlock check` lists them.
    pub const ALL: [Limit; 6] = [
        Limit::Memory,
        Limit::Pids,
        Limit::Cpu,
        Limit::OpenFiles,
        Limit::FileSize,
        Limit::Disk,
    ];

    /// The option's name (`memory`, `open-files`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Pids => "pids",
            Limit::Cpu => "cpu",
            Limit::OpenFiles => "open-files",
            Limit::FileSize => "file-size",
            Limit::Disk => "disk",
        }
    }
}

impl Limit {
    /// The `sandlock run` flag.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::Memory => "--memory",
            Limit::Pids => "--pids",
            Limit::Cpu => "--cpu",
            Limit::OpenFiles => "--open-files",
            Limit::FileSize => "--file-size",
            Limit::Disk => "--disk",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Limits {
    /// Smallest `--memory`: below it no runtime starts.
    pub const MIN_MEMORY: u64 = 4 << 20;
    /// Smallest `--disk`: one page of tmpfs.
    pub const MIN_DISK: u64 = 4 << 10;
    /// Most `--pids`: the kernel's own ceiling (`pid_max` limit).
    pub const MAX_PIDS: u32 = 1 << 22;

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The limit's value as the user would write it, when it is set.
    pub fn shown(&self, limit: Limit) -> Option<String> {
        match limit {
            Limit::Memory => self.memory.map(|s| s.to_string()),
            Limit::Pids => self.pids.map(|n| n.to_string()),
            Limit::Cpu => self.cpu.map(|c| c.to_string()),
            Limit::OpenFiles => self.open_files.map(|n| n.to_string()),
            Limit::FileSize => self.file_size.map(|s| s.to_string()),
            Limit::Disk => self.disk.map(|s| s.to_string()),
        }
    }

    /// Sets limit `name` (an option name) from `text`.
    pub(crate) fn set(&mut self, flag: &'static str, name: &str, text: &str) -> Result<()> {
        match name {
            "memory" => self.memory = Some(Size::parse(flag, text, Self::MIN_MEMORY)?),
            "pids" => self.pids = Some(count(flag, text, u64::from(Self::MAX_PIDS))? as u32),
            "cpu" => self.cpu = Some(CpuShare::parse(text)?),
            "open-files" => self.open_files = Some(count(flag, text, 1 << 30)?),
            "file-size" => self.file_size = Some(Size::parse(flag, text, 1)?),
            "disk" => self.disk = Some(Size::parse(flag, text, Self::MIN_DISK)?),
            other => unreachable!("limit {other} has no setter"),
        }
        Ok(())
    }
}

/// A count from 1 to `max`.
fn count(flag: &'static str, text: &str, max: u64) -> Result<u64> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| Error::invalid(flag, text, "expected a whole number"))?;
    if n == 0 || n > max {
        return Err(Error::invalid(
            flag,
            text,
            format!("must be from 1 to {max}"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_take_binary_units_and_show_the_largest() {
        let p = |t: &str| Size::parse("--memory", t, 1).map(Size::bytes);
        assert_eq!(p("256M").unwrap(), 256 << 20);
        assert_eq!(p("256MiB").unwrap(), 256 << 20);
        assert_eq!(p("1G").unwrap(), 1 << 30);
        assert_eq!(p("1.5G").unwrap(), 3 << 29);
        assert_eq!(p("4096").unwrap(), 4096);
        assert_eq!(Size(256 << 20).to_string(), "256M");
        assert_eq!(Size(1536 << 10).to_string(), "1536K");
        assert_eq!(Size(1 << 40).to_string(), "1T");
        assert_eq!(Size(1000).to_string(), "1000");
    }

    #[test]
    fn hostile_sizes_are_refused_by_name() {
        for bad in [
            "",
            "-1M",
            "M",
            "1X",
            "99999999999999999999",
            "1e999G",
            "nan",
        ] {
            let e = Size::parse("--disk", bad, 1).unwrap_err().to_string();
            assert!(e.contains("--disk"), "{bad}: {e}");
        }
        let e = Size::parse("--memory", "1M", Limits::MIN_MEMORY)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 4M"), "{e}");
    }

    #[test]
    fn cpu_shares_are_thousandths() {
        let p = |t: &str| CpuShare::parse(t).map(CpuShare::thousandths);
        assert_eq!(p("0.5").unwrap(), 500);
        assert_eq!(p(".25").unwrap(), 250);
        assert_eq!(p("2").unwrap(), 2000);
        assert_eq!(p("1.125").unwrap(), 1125);
        assert_eq!(CpuShare(500).to_string(), "0.5");
        assert_eq!(CpuShare(2000).to_string(), "2");
        assert_eq!(CpuShare(1050).to_string(), "1.05");
        for bad in [
            "0",
            "0.0",
            "",
            ".",
            "-1",
            "0.0001",
            "1e3",
            "nan",
            "4097",
            "99999999999",
        ] {
            let e = CpuShare::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--cpu"), "{bad}: {e}");
        }
    }

    #[test]
    fn counts_are_bounded() {
        let mut l = Limits::default();
        l.set("--pids", "pids", "64").unwrap();
        assert_eq!(l.pids, Some(64));
        for bad in ["0", "-3", "x", "4194305", "18446744073709551616"] {
            let e = l.set("--pids", "pids", bad).unwrap_err().to_string();
            assert!(e.contains("--pids") && e.contains(bad), "{e}");
        }
        assert_eq!(l.shown(Limit::Pids).as_deref(), Some("64"));
        assert_eq!(l.shown(Limit::Memory), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_parses_or_is_refused_without_panic(t in ".{0,24}") {
            let _ = Size::parse("--disk", &t, 1);
            let _ = CpuShare::parse(&t);
            let _ = count("--pids", &t, 10);
        }

        #[test]
        fn a_shown_size_parses_back(n in 1u64..(1 << 50)) {
            let shown = Size(n).to_string();
            prop_assert_eq!(Size::parse("--disk", &shown, 1).unwrap().bytes(), n);
        }

        #[test]
        fn a_shown_share_parses_back(n in 1u32..4_096_000) {
            let shown = CpuShare(n).to_string();
            prop_assert_eq!(CpuShare::parse(&shown).unwrap().thousandths(), n);
        }
    }
}
