//! `gen-data` end to end: it writes files that read back, and bad input
//! gives a clear error naming the record, never a panic.

use std::path::Path;
use std::process::{Command, Output};

fn gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gen-data"))
        .args(args)
        .output()
        .expect("gen-data runs")
}

fn fails_with(args: &[&str], needle: &str) {
    let o = gen(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn problems_traces_and_stats_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.jsonl");
    let o = gen(&[
        "problems",
        "--count",
        "60",
        "--seed",
        "3",
        "--out",
        s(&p),
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/s per thread"));
    assert!(d.path().join("p.jsonl.toml").exists());
    let v = d.path().join("v.jsonl");
    let o = gen(&[
        "problems",
        "--count",
        "20",
        "--seed",
        "4",
        "--exclude",
        s(&p),
        "--out",
        s(&v),
    ]);
    assert!(o.status.success());
    for solver in ["apr", "sosp"] {
        let t = d.path().join(format!("{solver}.jsonl"));
        let o = gen(&[
            "traces",
            "--solver",
            solver,
            "--problems",
            s(&p),
            "--seed",
            "1",
            "--out",
            s(&t),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = gen(&["stats", s(&t)]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success());
        assert!(out.contains("60 ") && out.contains("solve rate"), "{out}");
        assert!(out.contains("grammar/protocol errors: 0"), "{out}");
    }
    // Output does not depend on the thread count.
    let t1 = d.path().join("t1.jsonl");
    let t2 = d.path().join("t2.jsonl");
    for (t, n) in [(&t1, "1"), (&t2, "2")] {
        let o = gen(&[
            "traces",
            "--solver",
            "apr",
            "--problems",
            s(&p),
            "--seed",
            "5",
            "--threads",
            n,
            "--out",
            s(t),
        ]);
        assert!(o.status.success());
    }
    assert_eq!(std::fs::read(&t1).unwrap(), std::fs::read(&t2).unwrap());
    let same = gen(&[
        "problems",
        "--count",
        "60",
        "--seed",
        "3",
        "--out",
        s(&d.path().join("q.jsonl")),
    ]);
    assert!(same.status.success());
    assert_eq!(
        std::fs::read(&p).unwrap(),
        std::fs::read(d.path().join("q.jsonl")).unwrap()
    );
}

#[test]
fn malformed_inputs_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let w = |name: &str, bytes: &[u8]| {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let out = d.path().join("out.jsonl");
    let good =
        r#"{"nums":[98,3,34,65],"target":70,"solution":[],"optimal_path":"","start_size":4}"#;
    let empty = w("empty.jsonl", b"");
    fails_with(
        &[
            "traces",
            "--solver",
            "apr",
            "--problems",
            s(&empty),
            "--out",
            s(&out),
        ],
        "empty file",
    );
    fails_with(&["stats", s(&empty)], "empty file");
    let trunc = w(
        "trunc.jsonl",
        format!("{good}\n{}\n", &good[..30]).as_bytes(),
    );
    fails_with(
        &[
            "traces",
            "--solver",
            "sosp",
            "--problems",
            s(&trunc),
            "--out",
            s(&out),
        ],
        "record 2",
    );
    let wrong = w(
        "wrong.jsonl",
        format!(
            "{good}\n{}\n",
            good.replace("\"start_size\":4", "\"start_size\":5")
        )
        .as_bytes(),
    );
    fails_with(
        &[
            "traces",
            "--solver",
            "sosp",
            "--problems",
            s(&wrong),
            "--out",
            s(&out),
        ],
        "record 2: start_size",
    );
    let one = w(
        "one.jsonl",
        br#"{"nums":[5],"target":5,"solution":[],"optimal_path":"","start_size":1}"#,
    );
    fails_with(
        &[
            "traces",
            "--solver",
            "apr",
            "--problems",
            s(&one),
            "--out",
            s(&out),
        ],
        "record 1",
    );
    let neg = w("neg.jsonl", good.replace("98", "-98").as_bytes());
    fails_with(
        &[
            "traces",
            "--solver",
            "apr",
            "--problems",
            s(&neg),
            "--out",
            s(&out),
        ],
        "record 1",
    );
    let bin = w("bin.jsonl", b"{\"nums\":[1,2],\n\xff\xfe\n");
    fails_with(&["stats", s(&bin)], "not UTF-8");
    fails_with(
        &["stats", s(&d.path().join("missing.jsonl"))],
        "missing.jsonl",
    );
    fails_with(
        &[
            "problems",
            "--count",
            "3",
            "--numbers",
            "1",
            "--out",
            s(&out),
        ],
        "numbers per problem",
    );
    fails_with(
        &[
            "problems",
            "--count",
            "3",
            "--numbers",
            "x",
            "--out",
            s(&out),
        ],
        "--numbers",
    );
    fails_with(
        &[
            "traces",
            "--solver",
            "apr",
            "--problems",
            s(&trunc),
            "--heuristic",
            "foo",
            "--out",
            s(&out),
        ],
        "--heuristic",
    );
    assert!(!out.exists(), "no output is left behind by a failed run");
}

#[test]
fn broken_traces_are_all_reported_and_fail_the_exit_status() {
    let d = tempfile::tempdir().unwrap();
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../datasets/reference-samples/apr.jsonl"
    );
    let text = std::fs::read_to_string(src).unwrap();
    let first = text.lines().next().unwrap();
    // A spawn naming a node the parent never generated, and a truncated call.
    let unknown = first.replacen(
        "<Start Sub Search 0 at level 1> Moving to Node #0,3",
        "<Start Sub Search 0 at level 1> Moving to Node #0,9",
        1,
    );
    let cut = first.replacen("<End Calling Sub Searches>\\n", "<End Calling Sub", 1);
    let p = d.path().join("broken.jsonl");
    std::fs::write(&p, format!("{first}\n{unknown}\n{cut}\n")).unwrap();
    let o = gen(&["stats", s(&p)]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    // Every record is checked and reported, then the exit status says the
    // file is not clean.
    assert!(!o.status.success(), "{out}");
    assert!(err.contains("2 record(s) failed the checks"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.contains("grammar/protocol errors: 2"), "{out}");
    assert!(
        out.contains("record 2") && out.contains("never generated"),
        "{out}"
    );
    assert!(out.contains("record 3") && out.contains("newline"), "{out}");
    // The clean record alone passes.
    std::fs::write(&p, format!("{first}\n")).unwrap();
    assert!(gen(&["stats", s(&p)]).status.success());
}

/// An interrupted `gen-data` removes its temporary file before exiting.
#[cfg(unix)]
#[test]
fn an_interrupt_leaves_no_temporary_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("p.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_gen-data"))
        .args([
            "problems",
            "--count",
            "50000000",
            "--seed",
            "3",
            "--threads",
            "1",
        ])
        .args(["--out", s(&p)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = || {
        std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
    };
    let t = std::time::Instant::now();
    while !tmp() && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(tmp(), "no temporary file appeared");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = child.id().to_string();
    let k = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(k.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: removed 1 temporary file(s)"),
        "{err}"
    );
    assert!(!tmp() && !p.exists());
}
