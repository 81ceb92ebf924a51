//! NetworkAttachmentDefinition, the selection, default-network and network-status annotations.
