#ifndef DSRT_IR_STATUS_MACROS_H_
#define DSRT_IR_STATUS_MACROS_H_

// Abseil 20220623 ships no status macros; these are the two everybody needs.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DSRT_CONCAT_INNER_(a, b) a##b
#define DSRT_CONCAT_(a, b) DSRT_CONCAT_INNER_(a, b)

#define DSRT_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::absl::Status dsrt_status_ = (expr);           \
    if (!dsrt_status_.ok()) return dsrt_status_;    \
  } while (0)

#define DSRT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// DSRT_ASSIGN_OR_RETURN(auto x, MakeX());  DSRT_ASSIGN_OR_RETURN(x, MakeX());
#define DSRT_ASSIGN_OR_RETURN(lhs, expr) \
  DSRT_ASSIGN_OR_RETURN_IMPL_(DSRT_CONCAT_(dsrt_statusor_, __LINE__), lhs, expr)

#endif  // DSRT_IR_STATUS_MACROS_H_
