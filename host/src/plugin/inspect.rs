//! What a component is, for `mender check`: its world, imports and exports,
//! and whether this host can run it.

use super::sandbox::{new_engine, new_linker};
use super::{Contract, compile, world_of};

/// The world a plugin component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorldKind {
    /// `strategy-plugin`: admission and error hooks.
    Strategy,
    /// `fallback-plugin`: substitute answers.
    Fallback,
}

impl std::fmt::Display for WorldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorldKind::Strategy => "strategy-plugin",
            WorldKind::Fallback => "fallback-plugin",
        })
    }
}

/// A component's description.
#[derive(Clone, Debug)]
pub struct ComponentReport {
    /// The world, if it implements one of ours.
    pub world: Result<WorldKind, String>,
    /// The contract version it targets, if its world is one of ours.
    pub contract: Option<Contract>,
    /// Interfaces it imports.
    pub imports: Vec<String>,
    /// Interfaces it exports.
    pub exports: Vec<String>,
    /// Whether the host can link it: `Err` names what it lacks.
    pub links: Result<(), String>,
}

impl ComponentReport {
    /// Whether the component can be loaded as a plugin.
    pub fn is_valid(&self) -> bool {
        self.world.is_ok() && self.links.is_ok()
    }
}

/// Compiles `bytes` and describes the component; `Err` when it is not a
/// component at all.
pub fn inspect(bytes: &[u8]) -> Result<ComponentReport, String> {
    let engine = new_engine().map_err(|e| format!("{e:#}"))?;
    let component = compile(&engine, bytes)?;
    let ty = component.component_type();
    let imports = ty.imports(&engine).map(|(n, _)| n.to_owned()).collect();
    let exports = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
    let found = world_of(&engine, &component);
    let contract = found.as_ref().ok().map(|(_, c)| *c);
    let world = found.map(|(w, _)| w);
    let linker = new_linker(&engine).map_err(|e| format!("{e:#}"))?;
    let links = linker
        .instantiate_pre(&component)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    Ok(ComponentReport {
        world,
        contract,
        imports,
        exports,
        links,
    })
}
