/* '/'-separated resource paths: AML workspace resource ids
 * ("/subscriptions/<id>/resourceGroups/<group>/providers/
 * Microsoft.MachineLearningServices/workspaces/<name>", the event's topic and
 * the AML_WORKSPACES setting) and event subjects ("experiments/<id>/runs/<id>").
 * Pure; thread-safe. */
#ifndef HANDLER_RESOURCE_PATH_H
#define HANDLER_RESOURCE_PATH_H

#include "base/result.h"

/* Copies the next '/'-separated segment of *p into a new string and advances *p
 * past it. NULL when the segment is empty (or out of memory). */
HANDLER_NODISCARD char *resource_path_segment(const char **p);

/* Splits an AML workspace resource id into its parts (malloc'd into the out_
 * pointers). Returns RESULT_INVALID when `id` is not a workspace resource id. */
HANDLER_NODISCARD int workspace_id_parse(const char *id, char **out_subscription,
                                         char **out_resource_group, char **out_workspace);

#endif
