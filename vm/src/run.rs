//! Running one job on a compiled module: a fresh store and instance, the fuel limit, the
//! input in, the output out, and every failure of the job turned into a status (failures
//! of this node are [`InternalError`]s instead).

use cairn_abi::{EXPORT_ALLOC, EXPORT_MEMORY, EXPORT_RUN};
use cairn_ledger::JobStatus;
use wasmer::{FunctionEnv, Instance, InstantiationError, LinkError, RuntimeError, Store, Value};

use crate::engine::Compiled;
use crate::host::{self, HostState, HostTrap};
use crate::meter::{EXPORT_FUEL, EXPORT_GROW_REFUSED, EXPORT_STACK_UNITS, EXPORT_STOP, STOP_FUEL, STOP_STACK};
use crate::reason;
use crate::{Execution, InternalError, VmConfig};

/// Runs `input` through the compiled module with `fuel_limit`. The input's size was
/// already checked against the limit.
pub(crate) fn run(
    config: &VmConfig,
    compiled: &Compiled,
    input: &[u8],
    fuel_limit: u64,
) -> Result<Execution, InternalError> {
    // A store per job: a store frees its instances only when dropped.
    let mut store = Store::new(compiled.engine.clone());
    let env = FunctionEnv::new(&mut store, HostState::new(config.log_size_bytes_max));
    let imports = host::imports(&mut store, &env);
    let instance = match Instance::new(&mut store, &compiled.module, &imports) {
        Ok(instance) => instance,
        Err(e) => return instantiation_failed(e),
    };
    let mut job = Job {
        store,
        env,
        instance,
        fuel_limit,
        fuel_start: i64::try_from(fuel_limit).unwrap_or(i64::MAX),
        memory_pages_max: config.memory_pages_max,
        stack_units_max: config.stack_units_max,
    };
    job.set_fuel()?;
    let result = job.call(config, input);
    job.finish(result)
}

fn instantiation_failed(error: InstantiationError) -> Result<Execution, InternalError> {
    match error {
        // Out-of-bounds active data or element segments: the module's own fault. (No
        // start function is allowed, so no guest code ran and no fuel was used.)
        InstantiationError::Start(trap) | InstantiationError::Link(LinkError::Trap(trap)) => {
            let kind = reason::trap_kind(trap)?;
            Ok(Execution::failed(
                JobStatus::Trap,
                0,
                format!("instantiation trapped (a data or element segment does not fit): {kind}"),
            ))
        }
        // The host could not reserve the memory or tables the module declares: validation
        // already held their minimums to the limits, so this is this node running short
        // (address space, mappings), which another node would not reproduce.
        InstantiationError::Link(LinkError::Resource(reason)) => {
            Err(InternalError::new(format!("the job's memory or tables could not be reserved: {reason}")))
        }
        // Imports, CPU features: excluded by validation and compilation, so reaching this
        // is a fault of this node (its host functions, its artifact), not of the module.
        other => Err(InternalError::new(format!("a validated module could not be instantiated: {other}"))),
    }
}

/// Why a job stopped before returning an output.
enum Stop {
    /// Guest code (or a host function it called) trapped, in the named export.
    Trapped(&'static str, RuntimeError),
    /// The host refused what the guest handed over.
    Rejected(JobStatus, String),
}

struct Job {
    store: Store,
    env: FunctionEnv<HostState>,
    instance: Instance,
    fuel_limit: u64,
    /// The fuel global's initial value: the limit, capped at `i64::MAX` (no job can burn
    /// 2^63 fuel, so the cap is never observable).
    fuel_start: i64,
    memory_pages_max: u32,
    stack_units_max: u32,
}

impl Job {
    /// Gives the job its fuel and the host functions the fuel global (metered modules only).
    fn set_fuel(&mut self) -> Result<(), InternalError> {
        if let Ok(fuel) = self.instance.exports.get_global(EXPORT_FUEL) {
            fuel.set(&mut self.store, Value::I64(self.fuel_start))
                .map_err(|e| InternalError::new(format!("the fuel could not be set: {e}")))?;
            let fuel = fuel.clone();
            self.env.as_mut(&mut self.store).fuel = Some(fuel);
        }
        Ok(())
    }

    /// Calls `cairn_alloc`, writes the input, calls `cairn_run`, reads the output.
    fn call(&mut self, config: &VmConfig, input: &[u8]) -> Result<Vec<u8>, Stop> {
        let invalid = |e: wasmer::ExportError| {
            // Validation checked the exports; kept as a status rather than a panic.
            Stop::Rejected(JobStatus::InvalidModule, format!("job ABI export: {e}"))
        };
        let exports = &self.instance.exports;
        let memory = exports.get_memory(EXPORT_MEMORY).map_err(invalid)?.clone();
        let alloc = exports.get_typed_function::<i32, i32>(&self.store, EXPORT_ALLOC).map_err(invalid)?;
        let run = exports.get_typed_function::<(i32, i32), i64>(&self.store, EXPORT_RUN).map_err(invalid)?;
        self.env.as_mut(&mut self.store).memory = Some(memory.clone());

        let input_len = i32::try_from(input.len())
            .map_err(|_| Stop::Rejected(JobStatus::Trap, "input too large for a 32-bit job".to_owned()))?;
        self.reset_stack_units();
        let input_ptr = alloc.call(&mut self.store, input_len).map_err(|e| Stop::Trapped(EXPORT_ALLOC, e))?;
        memory.view(&self.store).write(u64::from(input_ptr as u32), input).map_err(|_| {
            Stop::Rejected(
                JobStatus::Trap,
                format!(
                    "`{EXPORT_ALLOC}({input_len})` returned {}, and the input does not fit \
                         there in the job's memory",
                    input_ptr as u32
                ),
            )
        })?;

        self.reset_stack_units();
        let packed = run.call(&mut self.store, input_ptr, input_len).map_err(|e| Stop::Trapped(EXPORT_RUN, e))?;
        let (output_ptr, output_len) = cairn_abi::unpack_output(packed);
        if output_len as usize > config.output_size_bytes_max {
            return Err(Stop::Rejected(
                JobStatus::OutputTooLarge,
                format!("the output is {output_len} bytes, over the limit of {} bytes", config.output_size_bytes_max),
            ));
        }
        let mut output = vec![0; output_len as usize];
        memory.view(&self.store).read(u64::from(output_ptr), &mut output).map_err(|_| {
            Stop::Rejected(
                JobStatus::Trap,
                format!(
                    "`{EXPORT_RUN}` returned an output of {output_len} bytes at {output_ptr}, \
                         outside the job's memory"
                ),
            )
        })?;
        Ok(output)
    }

    /// The execution: status by precedence OutOfFuel, then MemoryLimit (a trap after a
    /// refused `memory.grow`), then Trap. For every status but Ok the output is the reason
    /// ([`reason`]), also the execution's message.
    fn finish(mut self, result: Result<Vec<u8>, Stop>) -> Result<Execution, InternalError> {
        let log = std::mem::take(&mut self.env.as_mut(&mut self.store).log);
        // Unmetered modules (only built to measure the meter) report no fuel.
        let remaining = self.global_i64(EXPORT_FUEL).unwrap_or(self.fuel_start);
        let stop = self.global_i32(EXPORT_STOP).unwrap_or(0);
        // The fast meter notices exhaustion at its next check, or not at all if the job
        // ends first: a negative remainder is exhaustion just the same.
        if stop == STOP_FUEL || remaining < 0 {
            let message = format!("ran out of fuel: the limit of {} was used up", self.fuel_limit);
            return Ok(Execution::failed(JobStatus::OutOfFuel, self.fuel_limit, message).with_log(log));
        }
        let fuel_used = u64::try_from(self.fuel_start - remaining).unwrap_or(0);
        let (status, message) = match result {
            Ok(output) => {
                return Ok(Execution { status: JobStatus::Ok, output, fuel_used, log, message: String::new() });
            }
            Err(Stop::Rejected(status, message)) => (status, message),
            Err(Stop::Trapped(export, error)) => {
                let detail = match error.downcast_ref::<HostTrap>() {
                    Some(host_trap) => host_trap.to_string(),
                    None if stop == STOP_STACK => format!(
                        "the calls in progress would hold more than {} stack units (too deep a recursion, \
                         or frames with too many locals)",
                        self.stack_units_max
                    ),
                    None => reason::trap_kind(error)?.to_owned(),
                };
                if self.grow_refused() {
                    let message = format!(
                        "`{export}` trapped after a memory.grow was refused (the limit is {} pages of 64 KiB): \
                         {detail}",
                        self.memory_pages_max
                    );
                    (JobStatus::MemoryLimit, message)
                } else {
                    (JobStatus::Trap, format!("`{export}` trapped: {detail}"))
                }
            }
        };
        Ok(Execution::failed(status, fuel_used, message).with_log(log))
    }

    /// Sets the stack units in use to none before a call from the host into the job.
    fn reset_stack_units(&mut self) {
        if let Ok(units) = self.instance.exports.get_global(EXPORT_STACK_UNITS) {
            // Only fails for a global of another type, which the instrumentation never adds.
            let _ = units.set(&mut self.store, Value::I32(0));
        }
    }

    /// Whether any `memory.grow` of this instance returned -1.
    fn grow_refused(&mut self) -> bool {
        self.global_i32(EXPORT_GROW_REFUSED).is_some_and(|refused| refused != 0)
    }

    fn global_i32(&mut self, name: &str) -> Option<i32> {
        match self.instance.exports.get_global(name).ok()?.get(&mut self.store) {
            Value::I32(value) => Some(value),
            _ => None,
        }
    }

    fn global_i64(&mut self, name: &str) -> Option<i64> {
        match self.instance.exports.get_global(name).ok()?.get(&mut self.store) {
            Value::I64(value) => Some(value),
            _ => None,
        }
    }
}
