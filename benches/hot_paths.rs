//! Criterion benchmarks of the hot paths: opening an environment and
//! unsealing one secret, analysing a template, rendering one file, and
//! rendering a project in memory. Run with `cargo bench --bench hot_paths`.

use std::fmt::Write as _;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use mage_secrets::template::analysis::Analysis;
use mage_secrets::template::RenderOptions;
use mage_secrets::{Environment, Scope, Settings};

/// A block file like the project generator's: `refs` references, quoted and plain.
fn template(refs: usize, runtime: bool) -> String {
    let mut text = String::from("name: block\nsettings:\n");
    for k in 0..refs {
        let s = k * 7 % 100;
        let line = match k % 4 {
            0 => format!("  key_{k}: \"{{{{ mage_secret_var('secret_{s}') }}}}\""),
            1 => format!("  key_{k}: '{{{{ mage_secret_var(\"secret_{s}\") }}}}'"),
            2 => format!("  key_{k}: {{{{ mage_secret_var('secret_{s}') }}}}"),
            _ => format!("  key_{k}: \"{{{{ env_var('BENCH_HOST_{k}', 'localhost') }}}}\""),
        };
        let _ = writeln!(text, "{line}");
    }
    if runtime {
        text.push_str(
            "runtime:\n  start: \"{{ n_days_ago(1) }}\"\n  table: \"{{ variables('t') }}\"\n",
        );
    }
    text
}

fn environment(dir: &Path) -> Environment {
    let env = Environment::open(&Settings::for_data_dir(dir.join("data"))).unwrap();
    for s in 0..100 {
        env.set(
            &format!("secret_{s}"),
            &Scope::Global,
            &format!("value-{s}-xxxxxxxxxxxxxxxx"),
        )
        .unwrap();
    }
    env
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let env = environment(dir.path());
    let settings = Settings::for_data_dir(dir.path().join("data"));

    c.bench_function("open environment + unseal one secret", |b| {
        b.iter(|| {
            let env = Environment::open(&settings).unwrap();
            env.get_secret_value("secret_42").unwrap().unwrap()
        })
    });

    let key = mage_secrets::crypto::Key::generate();
    let sealed = key.seal(
        "env",
        "global",
        "name",
        b"a value of some forty bytes, say a token",
    );
    c.bench_function("unseal one 40-byte value", |b| {
        b.iter(|| key.open("env", "global", "name", &sealed).unwrap())
    });

    let simple = template(20, false);
    let mixed = template(20, true);
    let tags = format!("{{% if true %}}\n{simple}{{% endif %}}\n");
    c.bench_function("analyse one template (literal calls)", |b| {
        b.iter(|| Analysis::of(&simple).unwrap())
    });
    c.bench_function("analyse one template (tags)", |b| {
        b.iter(|| Analysis::of(&tags).unwrap())
    });

    env.preload().unwrap();
    let engine = env.engine();
    let options = RenderOptions::default();
    let chain = [Scope::Global];
    for (name, src) in [
        ("literal calls", &simple),
        ("runtime expressions", &mixed),
        ("tags", &tags),
    ] {
        c.bench_function(&format!("render one file ({name})"), |b| {
            b.iter(|| {
                let out = engine.render(Path::new("f.yaml"), src, &chain, &options, true);
                assert!(out.output.is_some());
                out
            })
        });
    }

    let project = dir.path().join("project");
    for i in 0..100 {
        let path = project.join(format!("pipelines/p{}/block_{i}.yaml", i % 5));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, template(20, i % 10 == 0)).unwrap();
    }
    c.bench_function("render a 100-file project in memory", |b| {
        b.iter(|| env.render_project(&project, &options).unwrap())
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
