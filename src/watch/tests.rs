//! The watch's own handling of a batch, without a watcher.

use super::*;
use crate::settings::Settings;

/// The observer's events, as text.
#[derive(Default)]
struct Events(Vec<String>);

impl WatchObserver for Events {
    fn event(&mut self, event: WatchEvent<'_>) {
        self.0.push(match event {
            WatchEvent::Failed(p, d) => format!("failed {}: {}", p.display(), d[0].message),
            WatchEvent::Written(p) => format!("written {}", p.display()),
            WatchEvent::Problem(m) => format!("problem {m}"),
            other => format!("{other:?}"),
        });
    }
}

#[test]
fn per_file_failures_are_reported_and_the_watch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (root, out) = (dir.path().join("p"), dir.path().join("out"));
    std::fs::create_dir_all(&root).unwrap();
    for (name, text) in [
        ("a.yaml", "a: 1\n"),
        ("b.yaml", "b: {{ mage_secret_var('missing') }}\n"),
        ("c.yaml", "c: 3\n"),
    ] {
        std::fs::write(root.join(name), text).unwrap();
    }
    // An output that cannot be written: a folder stands where it goes.
    std::fs::create_dir_all(out.join("c.yaml")).unwrap();
    let env = Environment::open(&Settings::for_data_dir(dir.path().join("data"))).unwrap();
    let options = WatchOptions {
        render: crate::template::RenderOptions::default(),
        selection: Selection::default(),
        mode: 0o600,
        debounce: Duration::from_millis(50),
        exec: None,
        initial_exec: true,
    };
    let mut events = Events::default();
    let mut watch = Watch::new(env, &root, &out, options, &mut events).unwrap();
    watch.render_all().unwrap();
    // A batch naming failing files, a vanished file and a folder that
    // is not there is handled, not returned.
    std::fs::write(root.join("a.yaml"), "a: 2\n").unwrap();
    watch.process_paths(
        ["a.yaml", "b.yaml", "c.yaml", "gone.yaml", "no/such/folder"]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
    );
    drop(watch);
    let text = events.0.join("\n");
    assert!(
        text.contains("failed b.yaml: secret 'missing' is not set"),
        "{text}"
    );
    assert!(text.contains("failed c.yaml: output"), "{text}");
    assert_eq!(
        std::fs::read_to_string(out.join("a.yaml")).unwrap(),
        "a: 2\n"
    );
}
