"""TLS: certificates are verified unless the configuration explicitly says not to."""

import asyncio
import ssl
import subprocess

from aiohttp import web

from spotvlm_ros.cloud.client import CloudClient, CloudClientConfig
from spotvlm_ros.cloud.responders import ScriptedResponder
from spotvlm_ros.cloud.server import make_app

MODEL = 'large-test-model'


def self_signed(folder):
    """A throwaway certificate for 127.0.0.1, signed by itself (openssl CLI)."""
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
         '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
         '-keyout', str(key), '-out', str(cert)],
        check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_self_signed_certificate_is_refused_unless_verification_is_off(tmp_path, keyframe):
    context = self_signed(tmp_path)

    async def main():
        runner = web.AppRunner(make_app(ScriptedResponder(), served_model=MODEL))
        await runner.setup()
        await web.TCPSite(runner, '127.0.0.1', 0, ssl_context=context).start()
        url = f'https://127.0.0.1:{runner.addresses[0][1]}/v1'
        answers = []
        try:
            for verify in (True, False):
                config = CloudClientConfig(base_url=url, model=MODEL, api_key_env='',
                                           verify_tls=verify, retries=2, max_image_side=320)
                async with CloudClient(config) as client:
                    answers.append(await client.request(keyframe[0], 1.0, 1, 'q'))
        finally:
            await runner.cleanup()
        return answers

    verified, unverified = asyncio.run(main())
    assert verified.status == 'error'
    assert verified.error.startswith('TLS failed') and 'CERTIFICATE_VERIFY_FAILED' in verified.error
    assert 'attempts' not in verified.error  # a certificate problem is not retried
    assert unverified.status == 'ok'
