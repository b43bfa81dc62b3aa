"""A fake WeChat Pay v3 server for the tests: a real ``http.server`` in a thread, speaking the v3 endpoints the
``wechatpayv3`` library calls, in public-key mode (responses and notifications signed with a "platform" RSA key
generated here, ``Wechatpay-Serial`` = the public key id). It checks the merchant's request signature
(``Authorization: WECHATPAY2-SHA256-RSA2048 ...``) with the merchant's public key, like WeChat does.

Helpers build notifications as WeChat sends them (resource encrypted with AEAD_AES_256_GCM under the API v3
key, envelope signed with the platform key).
"""
import base64
import json
import os
import re
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _sign(key, text):
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


class FakeWeChatPay:
    """State: ``orders`` {out_trade_no: dict}, ``refunds`` {out_refund_no: dict}; ``refund_status`` is what a
    new refund answers (PROCESSING / SUCCESS / CLOSED); ``fail_next`` makes the next N API calls answer 500."""

    def __init__(self, mchid="1900000109", appid="wxd678efh567hg6787"):
        self.mchid = mchid
        self.appid = appid
        self.merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)   # a forger's key
        self.merchant_serial_no = uuid.uuid4().hex.upper()
        self.public_key_id = "PUB_KEY_ID_" + secrets.token_hex(8).upper()
        self.api_v3_key = secrets.token_hex(16)          # 32 characters
        self.orders = {}
        self.refunds = {}
        self.requests = []
        self.refund_status = "PROCESSING"
        self.fail_next = 0
        self.lock = threading.Lock()
        self.server = None

    # ----- credentials as the operator enters them ---------------------------------------------------------
    @property
    def merchant_private_pem(self):
        return _pem_private(self.merchant_key)

    @property
    def platform_public_pem(self):
        return _pem_public(self.platform_key)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # ----- server -------------------------------------------------------------------------------------------
    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._dispatch(self, "GET")

            def do_POST(self):
                fake._dispatch(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def _signed_headers(self, body, key=None, serial=None, timestamp=None):
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = uuid.uuid4().hex
        return {
            "Wechatpay-Timestamp": stamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": _sign(key or self.platform_key, f"{stamp}\n{nonce}\n{body}\n"),
            "Wechatpay-Serial": serial or self.public_key_id,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def _check_authorization(self, method, path, body, header):
        m = re.match(r'WECHATPAY2-SHA256-RSA2048 (.*)', header or "")
        if not m:
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if fields.get("mchid") != self.mchid or fields.get("serial_no") != self.merchant_serial_no:
            return False
        text = f"{method}\n{path}\n{fields['timestamp']}\n{fields['nonce_str']}\n{body}\n"
        try:
            self.merchant_key.public_key().verify(base64.b64decode(fields["signature"]), text.encode(),
                                                  padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return False
        return True

    def _dispatch(self, handler, method):
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else ""
        path = handler.path
        with self.lock:
            self.requests.append((method, path, raw))
            fail = self.fail_next > 0
            if fail:
                self.fail_next -= 1
        if not self._check_authorization(method, path, raw, handler.headers.get("Authorization")):
            return self._answer(handler, 401, {"code": "SIGN_ERROR", "message": "bad signature"})
        if fail:
            return self._answer(handler, 500, {"code": "SYSTEM_ERROR", "message": "try later"})
        data = json.loads(raw) if raw else {}
        bare = path.split("?", 1)[0]
        if method == "POST" and bare == "/v3/pay/transactions/jsapi":
            return self._prepay(handler, data)
        m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)", bare)
        if method == "GET" and m:
            order = self.orders.get(m.group(1))
            if order is None:
                return self._answer(handler, 404, {"code": "ORDER_NOT_EXIST", "message": "no such order"})
            return self._answer(handler, 200, self.transaction(m.group(1)))
        m = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)/close", bare)
        if method == "POST" and m:
            order = self.orders.get(m.group(1))
            if order is not None and order["trade_state"] == "NOTPAY":
                order["trade_state"] = "CLOSED"
            return self._answer(handler, 204, None)
        if method == "POST" and bare == "/v3/refund/domestic/refunds":
            return self._refund(handler, data)
        m = re.fullmatch(r"/v3/refund/domestic/refunds/([^/]+)", bare)
        if method == "GET" and m:
            refund = self.refunds.get(m.group(1))
            if refund is None:
                return self._answer(handler, 404, {"code": "RESOURCE_NOT_EXISTS", "message": "no such refund"})
            return self._answer(handler, 200, refund)
        return self._answer(handler, 404, {"code": "NOT_FOUND", "message": path})

    def _answer(self, handler, status, payload):
        body = "" if payload is None else json.dumps(payload)
        handler.send_response(status)
        for k, v in self._signed_headers(body).items():
            handler.send_header(k, v)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body.encode())))
        handler.end_headers()
        if body:
            handler.wfile.write(body.encode())

    def _prepay(self, handler, data):
        payer = data.get("payer", {}).get("openid")
        if data.get("mchid") != self.mchid or data.get("appid") != self.appid or not payer:
            return self._answer(handler, 400, {"code": "PARAM_ERROR", "message": "bad parameters"})
        no = data["out_trade_no"]
        with self.lock:
            self.orders[no] = {"request": data, "trade_state": "NOTPAY", "transaction_id": None,
                               "prepay_id": "wx" + uuid.uuid4().hex}
        return self._answer(handler, 200, {"prepay_id": self.orders[no]["prepay_id"]})

    def _refund(self, handler, data):
        no = data["out_refund_no"]
        with self.lock:
            if no not in self.refunds:
                order = self.orders.get(data.get("out_trade_no"))
                if order is None or order["trade_state"] != "SUCCESS":
                    return self._answer(handler, 404, {"code": "RESOURCE_NOT_EXISTS", "message": "no such order"})
                self.refunds[no] = {
                    "refund_id": "50" + uuid.uuid4().hex[:26], "out_refund_no": no,
                    "transaction_id": order["transaction_id"], "out_trade_no": data["out_trade_no"],
                    "channel": "ORIGINAL", "status": self.refund_status, "request": data,
                    "amount": {"refund": data["amount"]["refund"], "total": data["amount"]["total"],
                               "payer_refund": data["amount"]["refund"], "currency": "CNY"},
                    "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
                }
                if self.refund_status == "SUCCESS":
                    self.refunds[no]["success_time"] = time.strftime("%Y-%m-%dT%H:%M:%S+08:00")
            refund = {k: v for k, v in self.refunds[no].items() if k != "request"}
        return self._answer(handler, 200, refund)

    # ----- the payer and WeChat's side --------------------------------------------------------------------
    def pay(self, out_trade_no, total=None):
        """The payer pays: the order becomes SUCCESS (``total`` fen: default the ordered amount)."""
        order = self.orders[out_trade_no]
        order["trade_state"] = "SUCCESS"
        order["transaction_id"] = order["transaction_id"] or "42" + uuid.uuid4().hex[:26]
        if total is not None:
            order["paid_total"] = total
        return self.transaction(out_trade_no)

    def transaction(self, out_trade_no):
        order = self.orders[out_trade_no]
        req = order["request"]
        total = order.get("paid_total", req["amount"]["total"])
        txn = {"appid": req["appid"], "mchid": req["mchid"], "out_trade_no": out_trade_no,
               "trade_state": order["trade_state"], "trade_state_desc": order["trade_state"],
               "trade_type": "JSAPI", "payer": req["payer"],
               "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}}
        if order["transaction_id"]:
            txn["transaction_id"] = order["transaction_id"]
            txn["success_time"] = time.strftime("%Y-%m-%dT%H:%M:%S+08:00")
            txn["bank_type"] = "OTHERS"
        return txn

    def finish_refund(self, out_refund_no, status="SUCCESS"):
        refund = self.refunds[out_refund_no]
        refund["status"] = status
        if status == "SUCCESS":
            refund["success_time"] = time.strftime("%Y-%m-%dT%H:%M:%S+08:00")
        return {"mchid": self.mchid, "out_trade_no": refund["out_trade_no"],
                "transaction_id": refund["transaction_id"], "out_refund_no": out_refund_no,
                "refund_id": refund["refund_id"], "refund_status": status,
                "success_time": refund.get("success_time"), "user_received_account": "支付用户零钱",
                "amount": {"total": refund["amount"]["total"], "refund": refund["amount"]["refund"],
                           "payer_total": refund["amount"]["total"], "payer_refund": refund["amount"]["refund"]}}

    def notification(self, resource, event_type="TRANSACTION.SUCCESS", *, key=None, serial=None, timestamp=None,
                     api_v3_key=None):
        """(headers, body) of a notification of ``resource`` as WeChat sends it; ``key``/``serial``/``timestamp``
        /``api_v3_key`` forge a bad one."""
        nonce = secrets.token_hex(6)                       # 12 characters, as WeChat's
        associated = "transaction" if event_type.startswith("TRANSACTION") else "refund"
        aes = AESGCM((api_v3_key or self.api_v3_key).encode())
        ciphertext = base64.b64encode(aes.encrypt(nonce.encode(), json.dumps(resource).encode(),
                                                  associated.encode())).decode()
        body = json.dumps({
            "id": str(uuid.uuid4()), "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "resource_type": "encrypt-resource", "event_type": event_type,
            "summary": "支付成功" if associated == "transaction" else "退款成功",
            "resource": {"original_type": associated, "algorithm": "AEAD_AES_256_GCM", "ciphertext": ciphertext,
                         "associated_data": associated, "nonce": nonce},
        })
        headers = self._signed_headers(body, key=key, serial=serial, timestamp=timestamp)
        headers["Content-Type"] = "application/json"
        return headers, body


def random_suffix():
    return os.urandom(3).hex()
