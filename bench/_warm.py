import sys, time, os, json
from pathlib import Path
from common import prepare_models, feature_records, http_event, serve_env
info = prepare_models(Path('/tmp/bw'), smoke=True)
os.environ.update({k: v for k, v in serve_env(Path(info["workspace"])).items() if k.startswith("MLOPSKIT_")})
import _wiring, serve
_wiring.reset(); serve._api = None
model = sys.argv[1] if len(sys.argv) > 1 else "churn"
records = feature_records(1, seed=11)
event = http_event(model, records)
out = serve.handler(event, None); assert out["statusCode"] == 200, out
p, _ = serve.api().service.predictor(model)
feed = p.inputs_from_request(records)
sess = p.session; wanted = [p.label_output, p.proba_output]
def t(name, f, n=3000):
    for _ in range(200): f()
    best = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n): f()
        best.append((time.process_time() - t0) / n * 1e6)
    print(f"{name:30s} {min(best):8.1f} us (min of 5) median {sorted(best)[2]:8.1f}")
t("bare session.run", lambda: sess.run(wanted, feed))
t("handler", lambda: serve.handler(event, None))
svc = serve.api().service
saved = svc.capture; svc.capture = None
t("handler no capture", lambda: serve.handler(event, None))
svc.capture = saved
t("inputs_from_request", lambda: p.inputs_from_request(records))
t("run_arrays", lambda: p.run_arrays(feed))
if os.environ.get("PROF"):
    import cProfile, pstats
    cProfile.run('for _ in range(20000): serve.handler(event, None)', '/tmp/profw')
    pstats.Stats('/tmp/profw').sort_stats('tottime').print_stats(30)
cap = svc.capture
from datetime import UTC, datetime
now = datetime.now(UTC)
labels, proba = p.run_arrays(feed)
t("capture()", lambda: cap.capture(model, "rid", now, 1, "served", 0.1, feed, labels, proba), n=1000)
cap.flush()
t("due()", lambda: cap.due())
t("clock.now", lambda: svc.registry.clock.now())
t("format", lambda: p.format(labels, proba))
api = serve.api()
t("api.handle", lambda: api.handle("POST", f"/v1/models/{model}:predict", {"content-type": "application/json"}, event["body"].encode(), request_id="x"))
t("serve._request", lambda: serve._request(event))
resp = api.handle("POST", f"/v1/models/{model}:predict", {"content-type": "application/json"}, event["body"].encode(), request_id="x")
t("payload", lambda: resp.payload())
t("predictor lookup", lambda: svc.predictor(model))
import cProfile, pstats
body = event["body"].encode()
cap.flush()
cProfile.run('for _ in range(20000): api.handle("POST", f"/v1/models/{model}:predict", {"content-type": "application/json"}, body, request_id="x")', '/tmp/profh')
pstats.Stats('/tmp/profh').sort_stats('tottime').print_stats(22)
