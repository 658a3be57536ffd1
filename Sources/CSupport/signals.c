#include <signal.h>
#include <string.h>
#include "csupport.h"

// Written only by the handler, read by the agent between steps (signal-safety(7): a handler may
// assign `volatile sig_atomic_t` objects and nothing else of the program's state).
static volatile sig_atomic_t first_signal = 0;
static volatile sig_atomic_t signal_count = 0;

static void csys_record_signal(int number) {
    if (first_signal == 0) first_signal = number;
    if (signal_count < 1000000) signal_count = signal_count + 1;
}

int csys_signals_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = csys_record_signal;
    // SA_RESTART: a read, write or waitpid under way when the signal comes goes on rather than
    // failing with EINTR; the agent stops at its own step boundaries, never in the middle of a call.
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    const int handled[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned i = 0; i < sizeof handled / sizeof handled[0]; i++) sigaddset(&action.sa_mask, handled[i]);
    for (unsigned i = 0; i < sizeof handled / sizeof handled[0]; i++) {
        // A signal ignored by whoever started the agent (nohup ignores SIGHUP) stays ignored.
        struct sigaction previous;
        if (sigaction(handled[i], NULL, &previous) != 0) return -1;
        if (previous.sa_handler == SIG_IGN) continue;
        if (sigaction(handled[i], &action, NULL) != 0) return -1;
    }
    // A signal blocked by whoever started the agent would never reach the handler.
    sigset_t unblock;
    sigemptyset(&unblock);
    for (unsigned i = 0; i < sizeof handled / sizeof handled[0]; i++) sigaddset(&unblock, handled[i]);
    return sigprocmask(SIG_UNBLOCK, &unblock, NULL);
}

int csys_signals_first(void) { return first_signal; }

int csys_signals_count(void) { return signal_count; }
