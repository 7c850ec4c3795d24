//! `[[codec]] plugin = "x.wasm"`: a WebAssembly codec file (`docs/plugins.md`) run by the
//! `wasm` codec of the registry, its path handed over as `options.path`; and
//! `[[payload_codec]]`: TS013 JavaScript payload codecs, by name for LoRaWAN devices.

use super::ConfigError;
use super::validate::invalid;

/// Turns `plugin = "dir/meter.wasm"` into `codec = "wasm"`, `options.path`, and a listener
/// name defaulting to the file's stem (`meter`).
pub(super) fn codec_plugin(
    key: &dyn Fn(&str) -> String,
    codec: &mut String,
    name: &mut String,
    plugin: &str,
    options: &mut toml::Table,
) -> Result<(), ConfigError> {
    if plugin.is_empty() {
        return Ok(());
    }
    if !codec.is_empty() {
        return Err(invalid(&key("plugin"), "give either codec = \"...\" or plugin = \"...\", not both"));
    }
    if options.contains_key("path") {
        return Err(invalid(&key("options.path"), "is set by plugin = \"...\"; remove it"));
    }
    let path = std::path::Path::new(plugin);
    if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
        return Err(invalid(&key("plugin"), format!("{plugin:?} is not a .wasm file")));
    }
    if name.is_empty() {
        *name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("wasm").to_string();
    }
    options.insert("path".into(), toml::Value::String(plugin.to_string()));
    // The name `roost_plugins::wasm_factory` registers (a build without `codec` starts no
    // codec listener, so the name is only checked against the registry there).
    *codec = "wasm".to_string();
    Ok(())
}

/// Checks every `[[payload_codec]]` table, and that each LoRaWAN device's script codec is one
/// of them (the files themselves are loaded when the gateway starts).
pub(super) fn payload_codecs(
    codecs: Vec<roost_plugins::config::PayloadCodecConfig>,
    lorawan: &roost_lorawan::settings::LorawanSettings,
) -> Result<Vec<roost_plugins::config::PayloadCodecConfig>, ConfigError> {
    for (i, c) in codecs.iter().enumerate() {
        c.check().map_err(|(field, problem)| invalid(&format!("payload_codec[{i}].{field}"), problem))?;
        if codecs[..i].iter().any(|o| o.name == c.name) {
            return Err(invalid(&format!("payload_codec[{i}].name"), format!("{:?} is defined twice", c.name)));
        }
    }
    for (i, d) in lorawan.network_server.devices.iter().enumerate() {
        if let roost_lorawan::settings::PayloadCodec::Script(name) = &d.payload_codec
            && !codecs.iter().any(|c| &c.name == name)
        {
            return Err(invalid(
                &format!("lorawan.device[{i}].payload_codec"),
                format!("{name:?} is not \"none\", \"json\", \"cayenne_lpp\" or the name of a [[payload_codec]]"),
            ));
        }
    }
    Ok(codecs)
}
