"""Shared pytest settings."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one torch thread: the tensors are tiny, and on a busy
    2-core machine a second thread costs more than it saves."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
