use super::*;

fn staged(out: &Path) -> Staging {
    let staging = Staging::new(out, 0o600).unwrap();
    for (rel, text) in [("a.yaml", "a"), ("p/x/b.yaml", "b"), ("p/c.yaml", "c")] {
        staging.add(Path::new(rel), text.as_bytes()).unwrap();
    }
    staging
}

fn project(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("project")).unwrap();
    project::absolute(&dir.join("project"))
}

#[test]
fn a_fresh_root_gets_its_tree_moved_in_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let summary = staged(&out)
        .commit(&project(dir.path()), &[], None)
        .unwrap();
    assert_eq!(summary.written, 3);
    assert_eq!(fs::read_to_string(out.join("p/x/b.yaml")).unwrap(), "b");
    assert_eq!(
        fs::metadata(out.join("p/x")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}"); // a.yaml, p, the marker
}

#[test]
fn a_fresh_root_taken_meanwhile_gets_its_outputs_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let staging = staged(&out);
    // Another render put its set there meanwhile.
    fs::create_dir_all(out.join("p/other")).unwrap();
    fs::write(out.join("p/other/keep.yaml"), "k").unwrap();
    fs::write(out.join("a.yaml"), "old").unwrap();
    let summary = staging.commit(&project(dir.path()), &[], None).unwrap();
    assert_eq!(summary.written, 3);
    assert_eq!(fs::read_to_string(out.join("a.yaml")).unwrap(), "a");
    assert_eq!(fs::read_to_string(out.join("p/c.yaml")).unwrap(), "c");
    assert_eq!(fs::read_to_string(out.join("p/x/b.yaml")).unwrap(), "b");
    assert_eq!(
        fs::read_to_string(out.join("p/other/keep.yaml")).unwrap(),
        "k"
    );
    assert!(!fs::read_dir(&out).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("stage")));
}

#[test]
fn a_fresh_root_that_is_the_project_is_refused_at_the_move() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let staging = staged(&out);
    let err = staging
        .commit(&project::absolute(&out), &[], None)
        .unwrap_err();
    assert!(
        err.to_string().contains("is the project or holds it"),
        "{err}"
    );
    assert!(!out.join("a.yaml").exists());
}

#[test]
fn outputs_added_from_many_threads_at_once_are_all_put_in_place() {
    for existing_root in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        if existing_root {
            fs::create_dir_all(out.join("f3")).unwrap();
            fs::write(out.join("f3/7.yaml"), "3/7").unwrap(); // unchanged
            fs::write(out.join("f4.yaml"), "old").unwrap();
        }
        let staging = Staging::new(&out, 0o600).unwrap();
        // Every thread writes into every folder (nested ones too), so
        // threads make the same staging folders at once.
        let rels: Vec<PathBuf> = (0..400)
            .map(|i| PathBuf::from(format!("f{}/{}.yaml", i % 20, i / 20)))
            .chain((0..200).map(|i| PathBuf::from(format!("n{}/m{}/{i}.yaml", i % 4, i % 3))))
            .collect();
        let text = |rel: &Path| {
            let name = rel.to_string_lossy();
            name.trim_end_matches(".yaml").replace(['f', 'n', 'm'], "")
        };
        std::thread::scope(|s| {
            for part in rels.chunks(50) {
                let staging = &staging;
                s.spawn(move || {
                    for rel in part {
                        staging.add(rel, text(rel).as_bytes()).unwrap();
                    }
                });
            }
        });
        staging.add(Path::new("f4.yaml"), b"new").unwrap();
        let summary = staging.commit(&project(dir.path()), &[], None).unwrap();
        assert_eq!(
            (summary.written, summary.unchanged),
            if existing_root { (600, 1) } else { (601, 0) }
        );
        for rel in &rels {
            assert_eq!(fs::read_to_string(out.join(rel)).unwrap(), text(rel));
        }
        assert_eq!(fs::read_to_string(out.join("f4.yaml")).unwrap(), "new");
    }
}

#[test]
fn short_staged_names_never_meet_an_output_named_like_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let staging = Staging::new(&out, 0o600).unwrap();
    staging.add(Path::new("1/a.yaml"), b"a").unwrap();
    staging.add(Path::new("2"), b"two").unwrap();
    // A path the staging tree would push past the safe length: short
    // names (1, 2, ...) from here on.
    let long: PathBuf = std::iter::once("zz".to_string())
        .chain(std::iter::repeat_n("d".repeat(200), 19))
        .chain(std::iter::once("f.yaml".to_string()))
        .collect();
    staging.add(&long, b"deep").unwrap();
    staging.add(Path::new("1/b.yaml"), b"b").unwrap();
    let summary = staging.commit(&project(dir.path()), &[], None).unwrap();
    assert_eq!(summary.written, 4);
    assert_eq!(fs::read_to_string(out.join("1/a.yaml")).unwrap(), "a");
    assert_eq!(fs::read_to_string(out.join("1/b.yaml")).unwrap(), "b");
    assert_eq!(fs::read_to_string(out.join("2")).unwrap(), "two");
    assert_eq!(fs::read_to_string(out.join(&long)).unwrap(), "deep");
}
