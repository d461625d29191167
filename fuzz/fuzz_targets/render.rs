//! Template analysis, quote-aware substitution and the YAML check, with no
//! I/O: any template with any secret value must render or fail with
//! diagnostics, never panic; and a value placed in a double-quoted scalar
//! must read back exactly.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mage_secrets::template::{Engine, EnvVars, RenderOptions, SecretSource};
use mage_secrets::{Scope, SecretValue};

struct OneSecret(Arc<SecretValue>);

impl SecretSource for OneSecret {
    fn lookup(&self, _chain: &[Scope], name: &str) -> mage_secrets::Result<Option<Arc<SecretValue>>> {
        Ok((name == "v").then(|| self.0.clone()))
    }
    fn environment(&self) -> &str {
        "fuzz"
    }
}

struct NoVars;

impl EnvVars for NoVars {
    fn get(&self, _name: &str) -> Option<String> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // "template \x1f value": the value fills mage_secret_var('v').
    let (template, value) = text.split_once('\u{1f}').unwrap_or((text, "value"));
    let engine = Engine::new(Arc::new(OneSecret(Arc::new(SecretValue::new(value.to_string())))), Arc::new(NoVars));
    let chain = [Scope::Global];
    for lenient in [false, true] {
        let options = RenderOptions { lenient, ..RenderOptions::default() };
        let _ = engine.render(Path::new("fuzz.yaml"), template, &chain, &options, true);
    }
    let quoted = engine.render(
        Path::new("q.yaml"),
        "key: \"{{ mage_secret_var('v') }}\"\n",
        &chain,
        &RenderOptions::default(),
        true,
    );
    let out = quoted.output.expect("a double-quoted value always renders");
    let doc: serde_yaml::Value = serde_yaml::from_str(&out).expect("and parses");
    assert_eq!(doc["key"].as_str(), Some(value));
});
