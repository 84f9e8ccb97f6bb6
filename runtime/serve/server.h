#ifndef DSRT_RUNTIME_SERVE_SERVER_H_
#define DSRT_RUNTIME_SERVE_SERVER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backends/communicator.h"

namespace dsrt::runtime::serve {

struct ServeOptions {
  std::string engine_path;
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (the listening line says which)
  int max_batch = 16;
  int64_t kv_cache_bytes = int64_t{2} << 30;
  int64_t kv_page_tokens = 16;
  int64_t max_step_tokens = 256;  // a step's tokens: decodes first, then prompt chunks
  std::string api_key;            // empty: no authentication
  std::string model_name;         // empty: the engine file's name without its extension
  std::string backend = "onednn";
  int threads = 0;
  int64_t max_body_bytes = int64_t{8} << 20;
  // The ranks of a partitioned engine (mpirun): rank 0 serves HTTP and schedules, the
  // others run its steps. Null: one process.
  backends::Communicator* communicator = nullptr;
};

// What the server reports once it listens.
struct ServeInfo {
  std::string url;
  std::string model_name;
  int max_batch = 0;
  int64_t kv_pages = 0;
  int64_t kv_page_tokens = 0;
  int64_t kv_tokens = 0;  // tokens the whole KV pool holds
};

// Serves the engine over OpenAI's HTTP API (/v1/models, /v1/chat/completions,
// /v1/completions) plus /health and /metrics, one model loop batching every request,
// until SIGINT or SIGTERM; then refuses new requests, ends the running ones and
// returns. `on_listening` is called once the socket accepts connections. On ranks other
// than 0 of a partitioned engine it serves nothing itself: it runs rank 0's steps until
// rank 0 shuts down.
absl::Status Serve(const ServeOptions& options, const std::function<void(const ServeInfo&)>& on_listening);

// "2G", "512M", "1048576", "1.5GiB": a byte count as a user writes it.
absl::StatusOr<int64_t> ParseByteSize(const std::string& text);

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_SERVER_H_
