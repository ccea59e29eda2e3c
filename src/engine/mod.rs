use std::collections::HashMap;
use crate::framework::Backend;
pub fn factory(_config: &HashMap<String, String>) -> Result<Backend, String> {
    Ok(Backend::new("LiteLLM"))
}
