//! Where moved processes run (PROTOCOL.md §19.4): a device declares
//! `weft/dev/<name>/holds/<first>/<n>/<local>` for each process moved to it
//! while it runs there, and every device follows those tokens, so a call or
//! a message naming a process finds it even when its first device, which
//! otherwise knows where it went, is unavailable.
//!
//! Invariant: this node declares one token per process it is told it
//! holds, until it is told it no longer does (or the session closes).

use super::{FabricError, Node, zerr};
use crate::keys;
use crate::wire::Pid;

impl Node {
    /// Declares that this device runs process `pid`, moved here, as its
    /// process `local`.
    pub async fn hold(&self, pid: &Pid, local: u32) -> Result<(), FabricError> {
        let token = self
            .session
            .liveliness()
            .declare_token(keys::holds(&self.name, pid, local))
            .await
            .map_err(zerr)?;
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid.to_string(), token);
        Ok(())
    }

    /// Withdraws the token of process `pid`: it ended here, or moved on.
    pub fn release(&self, pid: &Pid) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid.to_string());
    }

    /// The device that declares it runs process `pid` (moved there), and
    /// its process number there, if one does.
    pub fn holder_of(&self, pid: &Pid) -> Option<(String, u32)> {
        let text = pid.to_string();
        self.holders
            .borrow()
            .iter()
            .find(|(p, _, _)| *p == text)
            .map(|(_, holder, local)| (holder.clone(), *local))
    }
}
