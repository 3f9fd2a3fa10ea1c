//! What each kernel of a cubin takes of an SM — registers, stack, spills, shared memory — as
//! ptxas reports it when NVRTC is given [`PTXAS_VERBOSE`]: the numbers that decide how many
//! threads an SM runs, measured without a GPU (CI compiles with NVRTC on every run).

use std::collections::HashMap;
use std::fmt;

/// The NVRTC option that makes ptxas report each function's resources in the compile log.
pub const PTXAS_VERBOSE: &str = "--ptxas-options=-v";

/// One kernel's resources, as ptxas reported them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelResources {
    /// The kernel's symbol.
    pub name: String,
    /// Registers a thread.
    pub registers: u32,
    /// Bytes of the kernel's own stack frame a thread (local memory).
    pub stack_frame: u32,
    /// Bytes a thread stores to local memory for registers it could not hold.
    pub spill_stores: u32,
    /// Bytes a thread loads back of them.
    pub spill_loads: u32,
    /// Bytes of the stack a thread needs with every function it calls.
    pub cumulative_stack: u32,
    /// Bytes of static shared memory a block.
    pub shared: u32,
}

impl fmt::Display for KernelResources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} registers, {} B stack frame ({} B with calls), {} B spill stores, {} B spill loads, {} B shared",
            self.name,
            self.registers,
            self.stack_frame,
            self.cumulative_stack,
            self.spill_stores,
            self.spill_loads,
            self.shared
        )
    }
}

/// The most a kernel may take: CI fails past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Registers a thread.
    pub registers: u32,
    /// Bytes of stack a thread, with calls.
    pub stack: u32,
    /// Bytes of spill stores and loads a thread, together.
    pub spills: u32,
}

impl KernelResources {
    /// What this kernel takes past `budget`, said in one line; `None` within it.
    pub fn over(&self, budget: &Budget) -> Option<String> {
        let spills = self.spill_stores + self.spill_loads;
        let mut past = Vec::new();
        if self.registers > budget.registers {
            past.push(format!("{} registers (budget {})", self.registers, budget.registers));
        }
        if self.cumulative_stack > budget.stack {
            past.push(format!("{} B of stack (budget {})", self.cumulative_stack, budget.stack));
        }
        if spills > budget.spills {
            past.push(format!("{spills} B of spills (budget {})", budget.spills));
        }
        (!past.is_empty()).then(|| format!("{}: {}", self.name, past.join(", ")))
    }
}

/// The entry functions' (kernels') resources in the log of an NVRTC compile given
/// [`PTXAS_VERBOSE`], in the order ptxas compiled them. Device functions that were not
/// inlined report a stack frame of their own, counted in their callers' cumulative stack.
/// `Err` names the first line that says a kernel's numbers in a form not understood (a log
/// without ptxas lines gives no kernels).
pub fn kernel_resources(log: &str) -> Result<Vec<KernelResources>, String> {
    let mut kernels: Vec<KernelResources> = Vec::new();
    // Stack frames and spills by function, from "Function properties for NAME" and the
    // line after it.
    let mut frames: HashMap<String, (u32, u32, u32)> = HashMap::new();
    let mut properties_of: Option<String> = None;
    for (n, line) in log.lines().enumerate() {
        let bad = |what: &str| format!("ptxas log line {}: {what}: {line:?}", n + 1);
        let text = line.trim_start_matches("ptxas").trim_start();
        if let Some(rest) = text.strip_prefix("info    : Compiling entry function '") {
            let name = rest.split('\'').next().ok_or_else(|| bad("no kernel name"))?;
            kernels.push(KernelResources {
                name: name.to_owned(),
                registers: 0,
                stack_frame: 0,
                spill_stores: 0,
                spill_loads: 0,
                cumulative_stack: 0,
                shared: 0,
            });
        } else if let Some(name) = text.strip_prefix("info    : Function properties for ") {
            properties_of = Some(name.trim().to_owned());
        } else if let Some(rest) = text.strip_prefix(". ") {
            let name = properties_of.take().ok_or_else(|| bad("properties of no function"))?;
            let numbers = (
                amount(rest, "bytes stack frame").ok_or_else(|| bad("no stack frame"))?,
                amount(rest, "bytes spill stores").ok_or_else(|| bad("no spill stores"))?,
                amount(rest, "bytes spill loads").ok_or_else(|| bad("no spill loads"))?,
            );
            frames.insert(name, numbers);
        } else if let Some(rest) = text.strip_prefix("info    : Used ") {
            let kernel = kernels.last_mut().ok_or_else(|| bad("registers of no kernel"))?;
            kernel.registers = amount(rest, "registers").ok_or_else(|| bad("no register count"))?;
            kernel.cumulative_stack = amount(rest, "bytes cumulative stack size").unwrap_or(0);
            kernel.shared = amount(rest, "bytes smem").unwrap_or(0);
        }
    }
    for k in &mut kernels {
        if let Some(&(frame, stores, loads)) = frames.get(&k.name) {
            (k.stack_frame, k.spill_stores, k.spill_loads) = (frame, stores, loads);
        }
    }
    Ok(kernels)
}

/// The number before `unit` in a comma-separated list such as
/// `512 bytes stack frame, 0 bytes spill stores`.
fn amount(list: &str, unit: &str) -> Option<u32> {
    list.split(',').find_map(|item| item.trim().strip_suffix(unit)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ptxas_log_gives_each_kernel_its_numbers() {
        let log = "ptxas info    : 0 bytes gmem
ptxas info    : Function properties for _Z6helperv
ptxas         .     48 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
ptxas info    : Compiling entry function 'k' for 'sm_90'
ptxas info    : Function properties for k
ptxas         .     512 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers, 512 bytes cumulative stack size
ptxas info    : Compile time = 17.542 ms
ptxas info    : Compiling entry function 'mr_megakernel' for 'sm_90'
ptxas info    : Function properties for mr_megakernel
ptxas         .     2144 bytes stack frame, 16 bytes spill stores, 24 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 2192 bytes cumulative stack size, 1024 bytes smem, 400 bytes cmem[0]
";
        let ks = kernel_resources(log).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ks.len(), 2);
        assert_eq!(
            (ks[0].name.as_str(), ks[0].registers, ks[0].stack_frame, ks[0].cumulative_stack),
            ("k", 40, 512, 512)
        );
        let m = &ks[1];
        assert_eq!(
            (m.registers, m.stack_frame, m.spill_stores, m.spill_loads, m.cumulative_stack, m.shared),
            (255, 2144, 16, 24, 2192, 1024)
        );
        assert_eq!(kernel_resources("").unwrap_or_else(|e| panic!("{e}")), vec![]);
        let budget = Budget { registers: 255, stack: 2192, spills: 40 };
        assert_eq!(m.over(&budget), None);
        let tight = Budget { registers: 64, stack: 64, spills: 0 };
        let over = m.over(&tight).unwrap_or_default();
        assert!(over.starts_with("mr_megakernel: 255 registers (budget 64), 2192 B of stack"), "{over}");
        assert!(over.ends_with("40 B of spills (budget 0)"), "{over}");
        let err = kernel_resources("ptxas info    : Used many registers").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
