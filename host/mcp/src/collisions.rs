//! Names two servers share — a tool, a prompt, a resource URI or a
//! resource template: the first server in name order is listed, the other's
//! is hidden, and the operator is told once per name. Tools can be kept
//! apart with a server's `prefix`; prompts and resources are the server's
//! own names, so the warning says which one the client cannot reach.

use super::gateway::Gateway;
use super::upstream::Catalog;

/// The names of one kind (tools, prompts, …) in a catalog.
type NamesIn = fn(&Catalog) -> Vec<&str>;

/// The kinds of names a server lists, what to call each in a warning, and
/// the names of that kind in a catalog.
const KINDS: &[(&str, NamesIn)] = &[
    ("tool", |c| {
        c.tools.iter().map(|t| t.name.as_ref()).collect()
    }),
    ("prompt", |c| {
        c.prompts.iter().map(|p| p.name.as_str()).collect()
    }),
    ("resource", |c| {
        c.resources.iter().map(|r| r.uri.as_str()).collect()
    }),
    ("resource template", |c| {
        c.templates
            .iter()
            .map(|t| t.uri_template.as_str())
            .collect()
    }),
];

impl Gateway {
    /// Logs, once per name, each tool, prompt or resource one server hides
    /// from another (the first server in name order is listed; the others'
    /// are not).
    pub(crate) fn warn_collisions(&self) {
        let listed: Vec<_> = self.listed().collect();
        for (kind, names) in KINDS {
            let mut owners: std::collections::HashMap<&str, &str> = Default::default();
            for (up, catalog) in &listed {
                for name in names(catalog) {
                    match owners.get(name) {
                        None => {
                            owners.insert(name, up.name());
                        }
                        Some(first) if *first != up.name() => {
                            self.warn_once(kind, name, first, up.name())
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn warn_once(&self, kind: &str, name: &str, listed: &str, hidden: &str) {
        let key = format!("{kind}\0{name}\0{hidden}\0{listed}");
        let fresh = self
            .warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key);
        if !fresh {
            return;
        }
        let remedy = if kind == "tool" {
            "give one of them a `prefix`"
        } else {
            "only the first server's is reachable through the gateway (`prefix` renames tools only)"
        };
        tracing::warn!(
            kind,
            name,
            listed,
            hidden,
            "{kind} name collision: MCP server `{hidden}`'s {kind} `{name}` is hidden by server \
             `{listed}`'s (the first server in name order wins); {remedy}"
        );
    }
}
