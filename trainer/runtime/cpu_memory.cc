// See cpu_memory.h. Each allocation carries a 64-byte header (c10's CPU alignment) holding its size, so the
// deleter knows what to subtract without a table or a lock; the data pointer is also the deleter's context, as with
// c10's default allocator (raw_allocate and copy-on-write still see a simple data pointer).
#include "trainer/runtime/cpu_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/alignment.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <cstddef>

namespace aligntrain::runtime {

namespace {

constexpr size_t kHeader = c10::gAlignment;
static_assert(kHeader >= sizeof(size_t), "the header holds the allocation's size");

std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<bool> g_installed{false};

void raise_peak(int64_t now) {
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void counted_delete(void* data) {
  if (data == nullptr) return;
  char* base = static_cast<char*>(data) - kHeader;
  const size_t n = *reinterpret_cast<size_t*>(base);
  g_current.fetch_sub(static_cast<int64_t>(n), std::memory_order_relaxed);
  c10::free_cpu(base);
}

class CountingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n == 0) return {nullptr, nullptr, &counted_delete, cpu};
    char* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    *reinterpret_cast<size_t*>(base) = n;
    raise_peak(g_current.fetch_add(static_cast<int64_t>(n), std::memory_order_relaxed) + static_cast<int64_t>(n));
    void* data = base + kHeader;
    return {data, data, &counted_delete, cpu};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &counted_delete; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
};

}  // namespace

void track_cpu_memory() {
  if (g_installed.exchange(true)) return;
  // Never destroyed: allocations may come during static destruction, after main() returns.
  static auto* allocator = new CountingCpuAllocator();
  c10::SetCPUAllocator(allocator, /*priority=*/100);
}

bool cpu_memory_tracked() { return g_installed.load(); }

CpuMemory cpu_memory() { return {g_current.load(), g_peak.load()}; }

void reset_cpu_memory_peak() { g_peak.store(g_current.load()); }

}  // namespace aligntrain::runtime
