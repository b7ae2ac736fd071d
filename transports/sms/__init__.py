"""SMS over SMPP 3.4: the gateway is an ESME bound to the operator's SMSC as transceiver.

Pure layers (no I/O, no clock): ``encoding`` (GSM-7/UCS-2, segmentation, decoding),
``pdu`` + ``codec`` + ``framing`` (wire format), ``reassembly`` (concatenated MO),
``receipts`` (delivery receipts). ``esme`` is the thin asyncio layer over them;
``fake_smsc`` is a loopback SMSC for tests and demos.
"""
