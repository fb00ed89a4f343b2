// Early-return helpers for Status and Result<T>.
#pragma once

#include "hoist/status.h"

#define HOIST_CONCAT_INNER(a, b) a##b
#define HOIST_CONCAT(a, b) HOIST_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): expr is a Status; returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::hoist::Status hoist_status_ = (expr);         \
    if (!hoist_status_.ok()) return hoist_status_;  \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): expr is a Result<T>; on success moves its value into lhs
// (which may be a declaration such as `auto x`), otherwise returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  HOIST_ASSIGN_OR_RETURN_IMPL(HOIST_CONCAT(hoist_result_, __LINE__), lhs, expr)
#define HOIST_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
