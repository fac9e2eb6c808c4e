# Sourced by the A/B scripts beside it.

# Waits up to 20 s for something to listen on 127.0.0.1:PORT.
wait_port() {
  for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.2; done
  return 1
}
