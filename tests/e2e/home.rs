//! HOME: a fresh private directory by default (git, npm, pip and cargo
//! find a home they can write; the user's own dotfiles stay out unless
//! granted, and then appear at the same place in it), or a directory of
//! the user's with `--home`, in every front door.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;

/// A user's home as the host has it: a `.gitconfig` naming the user, in a
/// directory only its owner may enter (as on a real machine).
fn user_home() -> TempDir {
    let d = TempDir::new("home-user");
    std::fs::write(d.join(".gitconfig"), "[user]\n\tname = Host User\n").unwrap();
    std::fs::set_permissions(d.join(".gitconfig"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir(d.path().join(".cache")).unwrap();
    std::fs::set_permissions(
        d.path().join(".cache"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    d
}

const GIT_SCRIPT: &str = "echo \"$HOME\"; \
    git config --global user.name; echo name-rc=$?; \
    git config --global user.email sb@example.test && \
    git init -q \"$HOME/r\" && cd \"$HOME/r\" && \
    git -c user.name=sb commit -q --allow-empty -m m && echo committed";

both!(
    git_works_in_a_private_home_whatever_the_user_s_gitconfig,
    |ctx| {
        // Before, git died on every machine with a ~/.gitconfig: HOME was the
        // user's, which the sandbox may not read.
        let user = user_home();
        std::fs::set_permissions(user.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = ctx.sl_env(
            run_args(&[], &["/bin/sh", "-c", GIT_SCRIPT]),
            &[("HOME", &user.s())],
        );
        out.expect_code(0);
        let lines = out.stdout_lines();
        assert_eq!(lines.len(), 3, "{}", out.dump());
        let home = lines[0];
        assert!(
            home.starts_with("/tmp/sandlock.") && home.ends_with("/home"),
            "{}",
            out.dump()
        );
        // The user's config is not seen, and nothing was written to it.
        assert_eq!(lines[1], "name-rc=1", "{}", out.dump());
        assert_eq!(lines[2], "committed", "{}", out.dump());
        assert_eq!(
            std::fs::read_to_string(user.join(".gitconfig")).unwrap(),
            "[user]\n\tname = Host User\n"
        );
        assert!(
            !std::path::Path::new(home).exists(),
            "the private HOME {home} outlived the run"
        );
    }
);

both!(
    a_dotfile_granted_read_only_appears_in_the_private_home,
    |ctx| {
        let user = user_home();
        let gitconfig = user.join(".gitconfig");
        let out = ctx.sl_env(
        run_args(
            &["-r", &gitconfig],
            &[
                "/bin/sh",
                "-c",
                "git config --global user.name; echo x >> \"$HOME/.gitconfig\"; echo append-rc=$?",
            ],
        ),
        &[("HOME", &user.s())],
    );
        out.expect_code(0);
        assert_eq!(
            out.stdout,
            "Host User\nappend-rc=2\n",
            "read-only through the link\n{}",
            out.dump()
        );
        assert_eq!(
            std::fs::read_to_string(&gitconfig).unwrap(),
            "[user]\n\tname = Host User\n"
        );
    }
);

both!(
    a_write_grant_below_the_user_s_home_is_written_through_the_link,
    |ctx| {
        // `-r ~/.cache` and `-w ~/.cache/pkgs` below it: the outer grant is
        // linked, the inner one reached through that link (a link made inside
        // it would land in the user's real directory), and each keeps its
        // rights.
        let user = user_home();
        let pkgs = user.path().join(".cache/pkgs");
        std::fs::create_dir(&pkgs).unwrap();
        std::fs::set_permissions(&pkgs, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = ctx.sl_env(
            run_args(
                &["-r", &user.join(".cache"), "-w", pkgs.to_str().unwrap()],
                &[
                    "/bin/sh",
                    "-c",
                    "echo cached > \"$HOME/.cache/pkgs/p\" && cat \"$HOME/.cache/pkgs/p\"; \
                 echo x > \"$HOME/.cache/other\"; echo other-rc=$?",
                ],
            ),
            &[("HOME", &user.s())],
        );
        out.expect_code(0).expect_stdout("cached\nother-rc=2\n");
        assert_eq!(std::fs::read_to_string(pkgs.join("p")).unwrap(), "cached\n");
        let mut entries: Vec<String> = std::fs::read_dir(user.path().join(".cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        entries.sort();
        assert_eq!(entries, ["pkgs"]);
    }
);

both!(home_flag_uses_the_user_s_directory_read_write, |ctx| {
    let d = TempDir::new("home-flag");
    let out = ctx.sl(run_args(
        &["--home", &d.s()],
        &[
            "/bin/sh",
            "-c",
            "echo \"$HOME\" && echo kept > \"$HOME/f\" && chmod 600 \"$HOME/f\" && echo ok",
        ],
    ));
    out.expect_code(0);
    assert_eq!(out.stdout, format!("{}\nok\n", d.s()), "{}", out.dump());
    let f = d.path().join("f");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "kept\n");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The same option from a profile.
    let profile = d.join("p.toml");
    std::fs::write(&profile, format!("[filesystem]\nhome = {:?}\n", d.s())).unwrap();
    let out = ctx.sl(run_args(
        &["--profile-file", &profile],
        &["/bin/sh", "-c", "cat \"$HOME/f\""],
    ));
    out.expect_code(0).expect_stdout("kept\n");
    let out = ctx.sl([
        "run",
        "--profile-file",
        &profile,
        "--show-policy",
        "--",
        "true",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout.contains(&format!(
            "home:       {} (read/write), exported as HOME",
            d.s()
        )),
        "{}",
        out.dump()
    );
});

both!(home_flag_names_a_missing_or_odd_directory, |ctx| {
    let d = TempDir::new("home-bad");
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    for (value, why) in [
        (d.join("missing"), "No such file or directory"),
        (file.clone(), "not a directory"),
    ] {
        let out = ctx.sl(run_args(&["--home", &value], &["/bin/true"]));
        out.expect_code(2);
        assert!(
            out.stderr
                .contains(&format!("invalid value '{value}' for '--home': {why}")),
            "{}",
            out.dump()
        );
    }
    // twin: the directory itself is fine
    ctx.sl(run_args(&["--home", &d.s()], &["/bin/true"]))
        .expect_code(0);
});
