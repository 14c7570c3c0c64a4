//! The local cloud's guest under ccd: the agent beside each instance's
//! process, as a VM's startup script starts `ccd agent` beside the app's
//! container on Compute Engine. It reads the same configuration (the
//! `ccd-agent` metadata item) and publishes on the bus it is given.

use std::sync::Arc;

use ccd_agent::app::{Machine, ProcessGroup};
use ccd_agent::check::Check;
use ccd_agent::{Agent, AgentConfig};
use ccd_bus::AnyBus;
use ccd_localcloud::{Guest, Vm};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct AgentGuest {
    pub bus: Arc<AnyBus>,
}

impl Guest for AgentGuest {
    fn boot(&self, vm: Vm, stop: CancellationToken) {
        let Some(text) = vm.metadata.get(ccd_agent::METADATA_KEY) else {
            return; // not an instance of ccd's: no agent
        };
        let config = match AgentConfig::parse(text) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(instance = %vm.name, error = %e, "no agent on this instance");
                return;
            }
        };
        let check = Check::new(config.check.clone(), config.timeout)
            .on(vm.ip)
            .exec_env(vm.env.clone());
        let program = vm.program.clone();
        let app = ProcessGroup::new(move || program());
        // Every local instance is sized as a one-vCPU VM: a process that
        // keeps one core busy uses all of its instance.
        let machine = Machine {
            cpus: 1.0,
            ..Machine::this()
        };
        let agent = Agent::new(
            config,
            &vm.name,
            &vm.id,
            self.bus.clone(),
            check,
            app,
            machine,
        );
        tokio::spawn(async move {
            if let Err(e) = agent.run(stop).await {
                tracing::warn!(instance = %vm.name, error = %e, "the agent stopped");
            }
        });
    }
}
