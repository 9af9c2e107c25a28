//! Memory, table and stack limits, enforced where wasmer creates those objects.
//!
//! [`LimitingTunables`] wraps wasmer's [`BaseTunables`] (as in wasmer's
//! `tunables_limit_memory` example) and lowers every memory's and table's declared
//! maximum to the sandbox's limit, so a `memory.grow` or `table.grow` past it returns -1
//! like any refused grow. The tunables are set on the engine before compilation, because
//! the memory style (static, 4 GiB reservation with guard pages: no explicit bounds
//! checks) is baked into the compiled code.
//!
//! With a [`MemoryPool`], static memories are handed out from pre-reserved regions
//! ([`crate::pool`]) instead of a fresh reservation per instance.

#![allow(unsafe_code)] // The `Tunables` trait's `create_vm_*` methods are `unsafe fn`s.

use std::ptr::NonNull;
use std::sync::Arc;

use wasmer::sys::vm::{
    MemoryError, MemoryStyle, TableStyle, VMConfig, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition,
};
use wasmer::sys::{BaseTunables, Target, Tunables};
use wasmer::{MemoryType, Pages, TableType};

use crate::pool::MemoryPool;

/// [`BaseTunables`] with the memory, table and stack limits of a [`VmConfig`](crate::VmConfig).
pub(crate) struct LimitingTunables {
    base: BaseTunables,
    memory_pages_max: Pages,
    table_elements_max: u32,
    vm_config: VMConfig,
    /// Where memories come from (`None`: a fresh reservation each, as wasmer does).
    pool: Option<Arc<MemoryPool>>,
}

impl LimitingTunables {
    pub(crate) fn new(
        target: &Target,
        memory_pages_max: u32,
        table_elements_max: u32,
        stack_size_bytes: usize,
        pool: Option<Arc<MemoryPool>>,
    ) -> Self {
        LimitingTunables {
            base: BaseTunables::for_target(target),
            memory_pages_max: Pages(memory_pages_max),
            table_elements_max,
            vm_config: VMConfig { wasm_stack_size: Some(stack_size_bytes) },
            pool,
        }
    }

    /// The memory type with its maximum lowered to the limit.
    fn limit_memory(&self, ty: &MemoryType) -> Result<MemoryType, MemoryError> {
        // Validation already rejected larger minimums; this keeps the invariant local.
        if ty.minimum > self.memory_pages_max {
            return Err(MemoryError::MinimumMemoryTooLarge {
                min_requested: ty.minimum,
                max_allowed: self.memory_pages_max,
            });
        }
        let maximum = ty.maximum.map_or(self.memory_pages_max, |m| m.min(self.memory_pages_max));
        Ok(MemoryType { maximum: Some(maximum), ..*ty })
    }

    /// The table type with its maximum lowered to the limit.
    fn limit_table(&self, ty: &TableType) -> Result<TableType, String> {
        if ty.minimum > self.table_elements_max {
            return Err(format!("a table of {} elements is over the limit of {}", ty.minimum, self.table_elements_max));
        }
        let maximum = ty.maximum.map_or(self.table_elements_max, |m| m.min(self.table_elements_max));
        Ok(TableType { maximum: Some(maximum), ..*ty })
    }
}

impl Tunables for LimitingTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        // The style must be the one of the memory actually created: the limited one.
        match self.limit_memory(memory) {
            Ok(limited) => self.base.memory_style(&limited),
            // Creating it will fail; any style will do.
            Err(_) => self.base.memory_style(memory),
        }
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(&self, ty: &MemoryType, style: &MemoryStyle) -> Result<VMMemory, MemoryError> {
        let limited = self.limit_memory(ty)?;
        if let Some(pool) = &self.pool {
            // SAFETY: no definition location: the memory owns its definition.
            if let Some(memory) = unsafe { pool.create(&limited, style, None) }? {
                return Ok(memory);
            }
        }
        self.base.create_host_memory(&limited, style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let limited = self.limit_memory(ty)?;
        if let Some(pool) = &self.pool {
            // SAFETY: forwarded unchanged from our caller, who upholds `create_vm_memory`'s
            // contract (`vm_definition_location` points to a valid, owned definition).
            if let Some(memory) = unsafe { pool.create(&limited, style, Some(vm_definition_location)) }? {
                return Ok(memory);
            }
        }
        // SAFETY: forwarded unchanged from our caller, who upholds `create_vm_memory`'s
        // contract (`vm_definition_location` points to a valid, owned definition).
        unsafe { self.base.create_vm_memory(&limited, style, vm_definition_location) }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(&self.limit_table(ty)?, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        let limited = self.limit_table(ty)?;
        // SAFETY: forwarded unchanged from our caller, who upholds `create_vm_table`'s
        // contract (`vm_definition_location` points to a valid, owned definition).
        unsafe { self.base.create_vm_table(&limited, style, vm_definition_location) }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.vm_config
    }
}
