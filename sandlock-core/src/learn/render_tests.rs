//! Tests of the learned profile's text: it reads back as the policy it
//! says, and no workload text breaks its lines.

use super::*;
use crate::policy::PolicyBuilder;

fn apply(text: &str) -> crate::Result<crate::Policy> {
    let dir = std::env::temp_dir();
    let cx = crate::profile::schema::Cx {
        text,
        file: "learned.toml",
        base: Some(&dir),
    };
    let mut b = PolicyBuilder::new();
    crate::profile::schema::apply(&cx, &mut b)?;
    b.build()
}

#[test]
fn given_and_learned_options_read_back_as_a_policy() {
    let given = [
        ("add-host", "api.test:127.0.0.1".to_string()),
        ("no-system-view", "false".to_string()),
        ("timeout", "30".to_string()),
        ("env", "MODE=fast".to_string()),
        ("env", "API_TOKEN=hunter2-hunter2".to_string()),
        ("secret", "GH_TOKEN=env:GH_TOKEN@api.test".to_string()),
        ("secret-headers", "GH_TOKEN=authorization".to_string()),
        ("learn", "/tmp/x.toml".to_string()),
    ];
    let mut f = Findings {
        command: "python3\n[evil]".into(),
        ..Findings::default()
    };
    f.files.read.push(FileRule {
        path: PathBuf::from("/usr"),
        from: [PathBuf::from("/usr/bin/x\"\n[pwn]")].into(),
        listed: false,
        sensitive: false,
    });
    f.files.read.push(FileRule {
        path: PathBuf::from("/srv/a\"\n[http]\nallow = [\"* *\"]\u{202e}"),
        from: BTreeSet::new(),
        listed: true,
        sensitive: true,
    });
    f.net.push((
        "db.test:5432".into(),
        "connect 127.0.0.1:5432\nx = 1".into(),
    ));
    f.binds.push(8080);
    f.http.push(HttpRule {
        spec: "GET api.test/v1/*".into(),
        from: ["GET /v1/a".to_string()].into(),
        folded: false,
    });
    f.credentials
        .insert("API_TOKEN".into(), ["api.test".to_string()].into());
    let text = render(&Given(&given), &f);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("# source = \"env:API_TOKEN\""), "{text}");
    let p = apply(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(p.net.allow.len(), 1, "{text}");
    assert_eq!(p.net.hosts.len(), 1);
    assert_eq!(p.http.allow[0].spec, "GET api.test/v1/*");
    assert_eq!(
        p.fs.read,
        [
            PathBuf::from("/usr"),
            PathBuf::from("/srv/a\"\n[http]\nallow = [\"* *\"]\u{202e}")
        ]
    );
    // Every line is printable ASCII; the odd name is one escaped line.
    assert!(
        text.bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "{text}"
    );
    assert!(
        text.contains(r#""/srv/a\"\u000A[http]\u000Aallow = [\"* *\"]\u202E","#),
        "{text}"
    );
    assert_eq!(p.http.allow.len(), 1, "{text}");
    assert!(p.fs.system_view);
    assert_eq!(p.process.env, [("MODE".to_string(), "fast".to_string())]);
    assert_eq!(p.secrets.len(), 1);
    assert!(p.secrets[0].headers.is_some());
    assert!(!p.net.bind.is_empty());
}
