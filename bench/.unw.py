import sys, time, _remote_debugging
pid, n = int(sys.argv[1]), int(sys.argv[2])
u = _remote_debugging.RemoteUnwinder(pid, all_threads=True)
print(u.get_stack_trace()[:1])
