//! How denials are reported: the line on stderr (verb, target, the
//! workload's pid and command, the reason), silenced by -q, and the
//! --audit log. The network denials themselves are in net.rs.
//!
//! Every server is in the test process on a loopback address; nothing is
//! ever sent off the machine.

use crate::common::*;

/// Parses "sandlock: denied VERB TARGET from pid N (COMM): REASON".
fn parse_denial(line: &str) -> Option<(String, String, u32, String, String)> {
    let rest = line.strip_prefix("sandlock: denied ")?;
    let (verb, rest) = rest.split_once(' ')?;
    let (target, rest) = rest.split_once(" from pid ")?;
    let (pid, rest) = rest.split_once(" (")?;
    let (comm, reason) = rest.split_once("): ")?;
    // In its own pid namespace the workload's pid is not the host's,
    // which follows the command name: "(python3; host pid 4242)".
    let comm = match comm.split_once("; host pid ") {
        Some((comm, host)) => {
            host.parse::<u32>().ok()?;
            comm
        }
        None => comm,
    };
    Some((
        verb.into(),
        target.into(),
        pid.parse().ok()?,
        comm.into(),
        reason.into(),
    ))
}

both!(denial_reported_on_stderr, |ctx| {
    let allowed = TcpServer::start("127.0.0.1");
    let other = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let bad = format!("tcp4,127.0.0.1,{}", other.port());
    let out = ctx.sl(probe_args(&allow(&rule), &["pid", &bad]));
    out.expect_code(0).expect_err("tcp4", "EACCES");
    let pid: u32 = out.probe("pid").unwrap().parse().unwrap();
    let lines = out.denial_lines();
    assert_eq!(lines.len(), 1, "{}", out.dump());
    let (verb, target, dpid, comm, reason) =
        parse_denial(lines[0]).unwrap_or_else(|| panic!("malformed denial line\n{}", out.dump()));
    assert_eq!(verb, "connect", "{}", out.dump());
    assert_eq!(
        target,
        format!("127.0.0.1:{}", other.port()),
        "{}",
        out.dump()
    );
    assert_eq!(dpid, pid, "{}", out.dump());
    assert_eq!(comm, "python3", "{}", out.dump());
    assert_eq!(reason, "not in --net-allow", "{}", out.dump());

    // socket() without any network rule is reported too
    let out = ctx.sl(probe_args(&[], &["pid", "socket,inet,stream"]));
    out.expect_code(0).expect_err("socket", "EACCES");
    let pid: u32 = out.probe("pid").unwrap().parse().unwrap();
    let lines = out.denial_lines();
    assert_eq!(lines.len(), 1, "{}", out.dump());
    let (verb, _target, dpid, comm, _reason) =
        parse_denial(lines[0]).unwrap_or_else(|| panic!("malformed denial line\n{}", out.dump()));
    assert_eq!(
        (verb.as_str(), dpid, comm.as_str()),
        ("socket", pid, "python3"),
        "{}",
        out.dump()
    );

    // sendto to a denied UDP destination names the syscall
    let u = UdpServer::start("127.0.0.1");
    let out = ctx.sl(fixture_args(
        &["--net-allow", "udp://127.0.0.1:1"],
        "sendprobe",
        &["udp-sendto", "127.0.0.1", &u.port_s()],
    ));
    out.expect_code(0).expect_err("udp-sendto", "EACCES");
    let lines = out.denial_lines();
    assert_eq!(lines.len(), 1, "{}", out.dump());
    let (verb, target, _pid, comm, _reason) =
        parse_denial(lines[0]).unwrap_or_else(|| panic!("malformed denial line\n{}", out.dump()));
    assert_eq!(
        (verb.as_str(), comm.as_str()),
        ("sendto", "sendprobe"),
        "{}",
        out.dump()
    );
    // the UDP target may carry the rule syntax's udp:// prefix
    let plain = format!("127.0.0.1:{}", u.port_s());
    assert!(
        target == plain || target == format!("udp://{plain}"),
        "bad target {target:?}\n{}",
        out.dump()
    );
});

both!(quiet_flag_silences_denials, |ctx| {
    let other = TcpServer::start("127.0.0.1");
    let bad = format!("tcp4,127.0.0.1,{}", other.port());
    let out = ctx.sl(probe_args(&["-q", "--net-allow", "127.0.0.1:1"], &[&bad]));
    out.expect_code(0).expect_err("tcp4", "EACCES");
    assert!(!out.stderr.contains("denied"), "{}", out.dump());
    assert_eq!(other.accepted(), 0);
});

both!(audit_log_appends_json_lines, |ctx| {
    let d = TempDir::new("audit");
    let audit = d.join("audit.jsonl");
    std::fs::write(&audit, "{\"pre\":\"existing\"}\n").unwrap();
    std::fs::set_permissions(&audit, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let allowed = TcpServer::start("127.0.0.1");
    let other = TcpServer::start("127.0.0.1");
    let rule = format!("127.0.0.1:{}", allowed.port());
    let bad = format!("tcp4,127.0.0.1,{}", other.port());
    let good = format!("tcp4,127.0.0.1,{}", allowed.port());
    let out = ctx.sl(probe_args(
        &["--audit", &audit, "--net-allow", &rule],
        &["pid", &bad, &good],
    ));
    out.expect_code(0);
    assert_eq!(
        out.probe_nth("tcp4", 0),
        Err("EACCES".into()),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe_nth("tcp4", 1),
        Ok(allowed.payload.clone()),
        "{}",
        out.dump()
    );
    let pid: f64 = out.probe("pid").unwrap().parse().unwrap();

    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "{\"pre\":\"existing\"}",
        "audit file was not appended to:\n{text}"
    );
    let mut recs = Vec::new();
    for l in &lines[1..] {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}\n{text}"));
        for k in [
            "time", "pid", "host_pid", "comm", "syscall", "target", "verdict", "rule",
        ] {
            assert!(v.get(k).is_some(), "key {k} missing in {l}");
        }
        recs.push(v);
    }
    let pid_matches = |v: &Value| match v.get("pid") {
        Some(Value::Number(n)) => n.as_f64() == Some(pid),
        Some(Value::String(s)) => s.parse::<f64>().ok() == Some(pid),
        _ => false,
    };
    let find = |verdict: &str, target: String| {
        recs.iter()
            .find(|v| {
                v.get("verdict").and_then(Value::as_str) == Some(verdict)
                    && v.get("syscall").and_then(Value::as_str) == Some("connect")
                    && v.get("target").and_then(Value::as_str) == Some(target.as_str())
            })
            .cloned()
    };
    let deny = find("deny", format!("127.0.0.1:{}", other.port()))
        .unwrap_or_else(|| panic!("no deny record for the denied connect:\n{text}"));
    assert!(pid_matches(&deny), "pid mismatch in {deny:?}");
    assert_eq!(deny.get("comm").and_then(Value::as_str), Some("python3"));
    let allow_rec = find("allow", format!("127.0.0.1:{}", allowed.port()))
        .unwrap_or_else(|| panic!("no allow record for the allowed connect:\n{text}"));
    assert!(pid_matches(&allow_rec), "pid mismatch in {allow_rec:?}");
    let rule_s = allow_rec.get("rule").and_then(Value::as_str).unwrap_or("");
    assert!(
        rule_s.contains(&allowed.port_s()),
        "allow record does not name the rule: {allow_rec:?}"
    );
    for v in &recs {
        let verdict = v.get("verdict").and_then(Value::as_str).unwrap_or("");
        assert!(
            verdict == "deny" || verdict == "allow",
            "bad verdict in {v:?}"
        );
    }

    // a second run appends
    let before = lines.len();
    let out = ctx.sl(probe_args(
        &["--audit", &audit, "--net-allow", &rule],
        &[&bad],
    ));
    out.expect_code(0).expect_err("tcp4", "EACCES");
    let after = std::fs::read_to_string(&audit).unwrap().lines().count();
    assert!(
        after > before,
        "second run did not append ({before} -> {after})"
    );
});
