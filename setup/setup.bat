@echo off
rem The one installer on Windows: creates venv\ with Python 3.10 or 3.11 and installs the pinned
rem requirements (plus extra requirements files given as arguments). Idempotent, quiet when
rem nothing changed. PYTHON chooses an interpreter; TORCH_INDEX_URL chooses the torch build
rem (default here: PyTorch's CUDA 12.8 wheel index; set it to a CPU or ROCm index to change).
setlocal EnableDelayedExpansion
set "REPO=%~dp0.."
pushd "%REPO%"
if not defined TORCH_INDEX_URL set "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128"

set "VENV_PY=venv\Scripts\python.exe"
set "CHECK=import sys; sys.exit(0 if sys.version_info[:2] in ((3, 10), (3, 11)) else 1)"
if exist "%VENV_PY%" (
  "%VENV_PY%" -c "%CHECK%" >nul 2>&1 && goto :install
  echo Recreating venv\ ^(it was not a working Python 3.10/3.11 environment^).
  rmdir /s /q venv
)

set "CHOSEN="
set "FOUND="
for %%C in ("%PYTHON%" "py -3.11" "py -3.10" "python") do (
  if not defined CHOSEN if not "%%~C"=="" (
    for /f "delims=" %%V in ('%%~C -c "import platform; print(platform.python_version())" 2^>nul') do set "FOUND=!FOUND! %%~C=%%V"
    %%~C -c "%CHECK%" >nul 2>&1 && set "CHOSEN=%%~C"
  )
)
if not defined CHOSEN (
  echo error: Python 3.10 or 3.11 is required to create venv\.
  if defined FOUND (echo found:!FOUND!) else (echo found: no Python on PATH)
  echo Install Python 3.11 from python.org ^(tick "Add to PATH"^), or set PYTHON=C:\path\to\python.exe
  popd & exit /b 1
)
echo Creating venv\ with %CHOSEN%...
%CHOSEN% -m venv venv || (popd & exit /b 1)

:install
"%VENV_PY%" setup\install.py requirements.txt %*
set "RC=%ERRORLEVEL%"
popd & exit /b %RC%
