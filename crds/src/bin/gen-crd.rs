//! Writes crds/network-attachment-definition.yaml from the NetworkAttachmentDefinition type.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("network-attachment-definition.yaml");
    let yaml = multinet_crds::crd_yaml()?;
    std::fs::write(&path, yaml)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
