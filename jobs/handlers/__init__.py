"""Rule families beyond the task rules, one module each. `jobs.context.set_settings`
imports every module here (their `@router.on` handlers register themselves) and calls
each module's `register_periodic(settings)` when it has one."""
