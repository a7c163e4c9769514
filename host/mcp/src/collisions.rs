//! Tool names two servers share: the first server in name order is listed,
//! the other's tool is hidden, and the operator is told once per name.

use super::gateway::Gateway;

impl Gateway {
    /// Logs, once per name, each tool one server hides from another (the
    /// first server in config order is listed; the others' are not).
    pub(crate) fn warn_collisions(&self) {
        let mut owners: std::collections::HashMap<String, &str> = Default::default();
        for (up, catalog) in self.listed() {
            for tool in &catalog.tools {
                match owners.get(tool.name.as_ref()) {
                    None => {
                        owners.insert(tool.name.to_string(), up.name());
                    }
                    Some(first) if *first != up.name() => {
                        let key = format!("{}\0{}\0{first}", tool.name, up.name());
                        let fresh = self
                            .warned
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key);
                        if fresh {
                            tracing::warn!(
                                tool = %tool.name,
                                listed = %first,
                                hidden = %up.name(),
                                "tool name collision: MCP server `{}`'s tool `{}` is hidden by server `{first}`'s \
                                 (the first server in name order wins); give one of them a `prefix`",
                                up.name(),
                                tool.name
                            );
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }
}
