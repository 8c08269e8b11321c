// mamba2 info -m DIR: what a model folder holds.
#include <cstdio>
#include <map>

#include "commands.h"
#include "io/weight_store.h"
#include "model/config.h"

namespace mamba2::app {

Runner AddInfo(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show a model's layout, config, parameter count, dtypes and bytes");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("-m,--model", *dir, "model folder (config.json + weights)")->required();
  return [dir]() -> int {
    auto config = LoadConfig(*dir);
    if (!config.ok()) return Fail(config.status());
    auto store = WeightStore::OpenDir(*dir);
    if (!store.ok()) return Fail(store.status());
    int64_t params = 0;
    std::map<std::string, int64_t> by_dtype;
    for (const StoredTensor& t : store->tensors()) {
      params += t.view.numel();
      by_dtype[DTypeName(t.view.dtype)] += t.view.numel();
    }
    std::printf("model       %s\n", dir->c_str());
    std::printf("layout      %s config, %s weights\n", config->layout.c_str(), store->format().c_str());
    std::printf("config      %s\n", config->Describe().c_str());
    std::printf("tensors     %zu\n", store->tensors().size());
    std::printf("parameters  %lld (%.1f M; shared storages counted once per name)\n", (long long)params,
                double(params) / 1e6);
    for (const auto& [dt, n] : by_dtype) std::printf("dtype       %-5s %lld elements\n", dt.c_str(), (long long)n);
    std::printf("bytes       %zu\n", store->total_bytes());
    const MixerDims d = config->dims();
    std::printf("state       %lld bytes per sequence (fp32 conv + ssm, all layers)\n",
                (long long)(config->n_layer * (d.conv_state_size() + d.ssm_state_size()) * 4));
    return 0;
  };
}

}  // namespace mamba2::app
