"""The payment client: threads posting payments to the plugin's REST route at a steady rate,
recording every request's outcome. Times are time.monotonic(), like the harness's."""

import http.client
import json
import re
import threading
import time
import urllib.parse

KINDS = ("mixed", "fatal", "crit500", "no_route", "conn", "other")
KIND_HELP = {
    "mixed": "PHP fatal 'Call to undefined function molam_charge_*': main file and lazy file from two trees",
    "fatal": "another PHP fatal (parse error, undefined function...), named by the site's X-Molam-E2E-Fatal header",
    "crit500": "HTTP 500 critical-error page with no fatal named",
    "no_route": "HTTP 404 rest_no_route (plugin not loaded)",
    "conn": "connection refused, reset or timed out",
    "other": "any other answer",
}
MIXED = re.compile(r"Call to undefined function molam_charge_\d")


class Payment:
    __slots__ = ("sent", "done", "reference", "status", "kind", "version", "order_id", "detail")

    def __init__(self, sent, reference):
        self.sent = sent
        self.done = None
        self.reference = reference
        self.status = None
        self.kind = None       # None: acknowledged
        self.version = None
        self.order_id = None
        self.detail = None

    @property
    def acknowledged(self):
        return self.kind is None


def classify(payment, status, headers, body):
    payment.status = status
    text = body.decode("utf-8", "replace")
    fatal = headers.get("X-Molam-E2E-Fatal")
    if status == 200:
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is True and isinstance(answer.get("order_id"), int):
            payment.version = str(answer.get("version"))
            payment.order_id = answer["order_id"]
            return
    if fatal and MIXED.search(fatal):
        payment.kind, payment.detail = "mixed", fatal
    elif fatal or "Fatal error" in text or "Parse error" in text:
        payment.kind, payment.detail = "fatal", fatal or text[:200]
    elif status == 500 and "critical error" in text:
        payment.kind, payment.detail = "crit500", text[:200]
    elif status == 404 and "rest_no_route" in text:
        payment.kind, payment.detail = "no_route", text[:200]
    else:
        payment.kind, payment.detail = "other", f"HTTP {status}: {text[:200]}"


class PaymentClient:
    """`threads` threads sharing a target of `rate` payments a second."""

    def __init__(self, port, label, rate=80.0, threads=4, timeout=10.0):
        self.port = port
        self.label = label
        self.interval = threads / rate
        self.threads = threads
        self.timeout = timeout
        self.payments = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []
        self._sequence = 0

    def start(self):
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True, name=f"payer-{index}")
            worker.start()
            self._workers.append(worker)

    def stop(self):
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)
        self._workers = []

    def _next_reference(self):
        with self._lock:
            self._sequence += 1
            # The plugin keeps a reference as WordPress's sanitize_key() leaves it: [a-z0-9_-] only.
            label = "".join(c if c.isalnum() or c in "_-" else "-" for c in self.label.lower())
            return f"e2e-{label}-{self._sequence}"

    def _run(self, index):
        # Threads start staggered so that their requests interleave evenly.
        next_at = time.monotonic() + index * self.interval / self.threads
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                if self._stop.is_set():
                    break
            next_at = max(next_at + self.interval, time.monotonic() - self.interval)
            self._pay()

    def _pay(self):
        reference = self._next_reference()
        body = urllib.parse.urlencode({"amount": 2500, "currency": "XOF", "reference": reference})
        payment = Payment(time.monotonic(), reference)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            connection.request("POST", "/?rest_route=/molam/v1/pay", body=body,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            answer = connection.getresponse()
            classify(payment, answer.status, answer.headers, answer.read())
        except (OSError, http.client.HTTPException) as error:
            payment.kind, payment.detail = "conn", f"{type(error).__name__}: {error}"
        finally:
            connection.close()
            payment.done = time.monotonic()
        with self._lock:
            self.payments.append(payment)
